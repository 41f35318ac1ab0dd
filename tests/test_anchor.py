"""The supervised anchor: the game's demonstrations, tokenized as the policy is prompted, and a
λ·NLL term that equals the NLL computed by hand."""

import numpy as np
import pytest
import torch

from sparring.agents.learners.anchor import Anchor, completion_nll
from sparring.agents.learners.model import Batch, LearnerModel
from sparring.agents.llm import LLMPolicy
from sparring.envs import make
from sparring.envs.parsing import split_hidden_cot
from sparring.pool import InferencePool
from sparring.pool.transformers_backend import render_request


def test_redteam_demonstrations_are_helpful_answers_to_benign_seeds_in_the_game_format():
    game = make("sparring/redteam-v0", raw=True).game
    demos = game.demonstrations()
    benign = {s.prompt: s for s in game.pools["benign"]}
    assert demos and len(demos) == sum(bool(s.reference) for s in benign.values())
    for demo in demos:
        assert demo.agent == "defender" and demo.observation["hidden_cot"] == 1
        parsed = split_hidden_cot(demo.output)
        assert parsed.valid, demo.output
        seed = next(s for p, s in benign.items() if demo.observation["text"].endswith(p))
        assert parsed.answer == seed.brief_reference and seed.reference.startswith(parsed.answer)
    plain = make("sparring/redteam-v0", raw=True, hidden_cot=False).game.demonstrations()
    assert plain[0].output == benign[plain[0].observation["text"].rsplit("\n", 1)[-1]].brief_reference
    assert make("sparring/matrix-v0", raw=True).game.demonstrations() == []


def test_the_anchor_prompts_the_learner_as_its_policy_is_prompted_in_play():
    learner = LearnerModel("tiny", lr=1e-4)
    policy = LLMPolicy("tiny", pool=InferencePool(), system_prompt="Be brief.")
    demos = make("sparring/redteam-v0", raw=True).game.demonstrations()[:3]
    anchor = Anchor(demos, learner, policy.request, batch=2)
    tok = learner.tokenizer
    for demo, (prompt_ids, completion_ids) in zip(demos, anchor.pairs):
        rendered = render_request(tok, policy.request(demo.observation))
        assert "Be brief." in rendered and rendered.endswith("<think>")
        assert prompt_ids == tok(rendered, add_special_tokens=False)["input_ids"]
        assert completion_ids[-1] == tok.eos_token_id
        assert tok.decode(completion_ids[:-1]).strip() == demo.output.strip()
    assert anchor.draw(np.random.default_rng(0)).input_ids.shape[0] == 2


def test_the_anchor_term_equals_the_nll_computed_by_hand():
    learner = LearnerModel("tiny", lr=1e-4)
    policy = LLMPolicy("tiny", pool=InferencePool())
    demos = make("sparring/redteam-v0", raw=True).game.demonstrations()[:4]
    anchor = Anchor(demos, learner, policy.request, batch=4)
    batch = Batch.from_pairs(anchor.pairs, learner.pad_id)
    with torch.no_grad():
        term = anchor.loss(batch)
        total, count = 0.0, 0
        for prompt, completion in anchor.pairs:
            ids = torch.tensor([prompt + completion])
            logits = learner.model(input_ids=ids).logits[0].log_softmax(-1)
            for i, token in enumerate(completion):  # token at position len(prompt) + i
                total -= float(logits[len(prompt) + i - 1, token])
                count += 1
    assert float(term) == pytest.approx(total / count, rel=1e-4)
    assert float(completion_nll(torch.zeros(2, 3), torch.zeros(2, 3))) == 0.0  # no tokens, no loss


def test_the_anchor_pulls_the_learner_toward_its_demonstrations(tmp_path):
    from sparring import cli
    from sparring.agents.learners import config_for
    from sparring.agents.learners.selfplay import SelfPlayTrainer

    base = ["games_per_update=4", "agent.max_new_tokens=8", "tensorboard=false",
            "plot=false", "learner.sft_batch=8"]
    off = SelfPlayTrainer(config_for(cli._compose("train", [*base, f"run_dir={tmp_path}/off", "learner.sft_coef=0"])))
    assert off.anchors == {}
    off.close()
    trainer = SelfPlayTrainer(config_for(cli._compose("train", [*base, "updates=6", "learner.lr=1e-3",
                                                               f"run_dir={tmp_path}/on"])))
    assert len(trainer.anchors[None]) == len(trainer.anchors[None].pairs) > 0
    rows = trainer.run()
    trainer.close()
    nll = [row["sft_nll"] for row in rows if "sft_nll" in row]
    assert len(nll) >= 4 and nll[-1] < nll[0]
