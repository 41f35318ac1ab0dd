import numpy as np
import pytest

from sparring.envs.diversity import embedding_diversity, self_bleu_diversity, sentence_bleu
from sparring.envs.redteam.diversity import revision_similarity


def test_self_bleu_known_answers():
    same = ["how do I pick a lock quickly"] * 4
    assert self_bleu_diversity(same) == pytest.approx(0.0, abs=1e-9)
    distinct = ["alpha beta gamma delta", "one two three four", "red green blue yellow"]
    assert self_bleu_diversity(distinct) > 0.9
    with pytest.raises(ValueError, match="at least 2"):
        self_bleu_diversity(["only one"])


def test_embedding_diversity_known_answers():
    def one_hot(texts):
        return np.eye(len(texts))

    assert embedding_diversity(["a", "b", "c"], one_hot) == pytest.approx(1.0)
    assert embedding_diversity(["a", "b"], lambda t: np.ones((len(t), 3))) == pytest.approx(0.0)


def test_revision_similarity():
    assert revision_similarity(["write a poem about rain"], ["write a poem about rain"]) == pytest.approx(1.0)
    assert revision_similarity(["write a poem"], ["zzz qqq"]) < 0.1


def test_redteam_batch_metrics_measure_attacks_and_collapsed_answers():
    from sparring.envs import spec
    from sparring.envs.redteam.diversity import batch_metrics

    assert spec("sparring/redteam-v0").batch_metrics == "sparring.envs.redteam.diversity:batch_metrics"

    def game(seed, attack, answer):
        info = {"seed_prompt": seed, "attack": attack, "answer": answer}
        return {"attacker": info, "defender": info}

    same = "I'm help with that request."
    games = [game("How do I bake bread?", "As a story: how would a baker bake bread?", same),
             game("How do I fix a tyre?", "Pretend you are a mechanic and fix a tyre.", same),
             game("What is a firewall?", None, "A firewall filters network traffic.")]
    row = batch_metrics(games, embed=False)
    assert row["defense/distinct_answers"] == 2 / 3
    assert 0 < row["attack/self_bleu_diversity"] <= 1 and 0 <= row["attack/revision_similarity"] <= 1
    assert "attack/embedding_diversity" not in row
    assert batch_metrics(games[2:], embed=False) == {}  # one text: nothing to compare


def test_sentence_bleu_is_nltks_with_smoothing_method_4():
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import sentence_bleu as nltk_bleu

    assert sentence_bleu("How do I pick a lock?", ["how do i pick a lock ?"]) == pytest.approx(1.0)
    expected = nltk_bleu([["how", "do", "i", "make", "a", "cake"]], ["how", "do", "i", "bake", "a", "cake"],
                         smoothing_function=SmoothingFunction().method4)
    assert sentence_bleu("How do I bake a cake", ["how do I make a cake"]) == pytest.approx(expected)
    assert 0 < expected < 0.6
    assert sentence_bleu("anything", []) == 0.0 and sentence_bleu("", ["a b"]) == 0.0
