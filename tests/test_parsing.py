import pytest

from sparring.envs.core import read_output
from sparring.envs.parsing import format_cot, parse_bracketed_choice, split_hidden_cot


def test_valid_format_splits_reasoning_and_answer():
    parsed = split_hidden_cot("  I should help. </think>\n<answer> Here you go. </answer>\n")
    assert parsed.valid
    assert parsed.reasoning == "I should help."
    assert parsed.answer == "Here you go."


@pytest.mark.parametrize(
    ("output", "reason", "answer"),
    [
        ("just text", "exactly one </think>", ""),  # no </think>: all of it is hidden reasoning
        ("<think> r </think> <answer> a </answer>", "literal <think>", "a"),
        ("r </think> <answer> a </answer> <answer> b </answer>", "<answer> x2", "a"),
        ("r </think> </think> <answer> a </answer>", "</think> x2", "a"),
        ("r </think> oops <answer> a </answer>", "between </think> and <answer>", "a"),
        ("r </think> <answer> a </answer> trailing", "text after </answer>", "a"),
        ("</think> <answer> a </answer>", "empty reasoning", "a"),
        ("r </think> <answer>   </answer>", "empty answer", ""),
        ("<answer> a </answer> r </think>", "out of order", ""),  # an answer inside the reasoning stays hidden
        ("secret plan <answer> leaked? </answer>", "exactly one", ""),
        ("plan </think> first </think> <answer> a </answer>", "</think> x2", "a"),
        ("my plan </think> the answer without tags", "<answer> x0", "the answer without tags"),
        ("", "exactly one", ""),
    ],
)
def test_malformed_formats_have_reasons_and_never_reveal_reasoning(output, reason, answer):
    parsed = split_hidden_cot(output)
    assert not parsed.valid
    assert reason in parsed.error
    assert parsed.answer == answer
    if parsed.reasoning:
        assert parsed.reasoning not in parsed.answer


@pytest.mark.parametrize("tail", ["", " <answer> hi </answer>", " </answer>", " <answer>", " </think>",
                                  " </think> <answer> x </answer>", " </think> </think> loose"])
def test_nothing_written_before_the_last_think_close_is_ever_visible(tail):
    secret = "SECRET-1234"
    for output in (f"{secret}{tail}", f"a <answer> {secret} </answer>{tail}", f"{secret} </think>{tail}"):
        parsed = split_hidden_cot(output)
        assert secret not in parsed.answer, (output, parsed)
        if secret not in output[output.rfind("</think>"):] if "</think>" in output else True:
            assert parsed.reasoning and secret in parsed.reasoning


def test_parser_is_linear_on_long_tagless_output():
    parsed = split_hidden_cot(" \n" * 200_000 + "x")
    assert not parsed.valid


def test_read_output_handles_none_non_strings_and_length():
    assert read_output("a", None, hidden_cot=True, max_chars=10).error == "no output (None)"
    assert "must be a string" in read_output("a", 12, hidden_cot=False, max_chars=10).error
    long = read_output("a", format_cot("r", "x" * 50), hidden_cot=True, max_chars=20)
    assert "too long (80 > 20" in long.error
    assert read_output("a", " hi ", hidden_cot=False, max_chars=10).text == "hi"


def test_an_output_cut_for_length_hides_all_of_its_reasoning():
    raw = "SECRET_PLAN </think> SECRET_MORE " + "x" * 100 + " </think> <answer> hi </answer>"
    move = read_output("a", raw, hidden_cot=True, max_chars=60)  # the cut falls before the last </think>
    assert "too long" in move.error and "SECRET" not in move.text and move.text == "hi"


@pytest.mark.parametrize(
    ("text", "index", "error"),
    [
        ("[rock]", 0, None),
        ("I pick [ PAPER ] today", 1, None),
        ("[thinking] so [scissors]", 2, None),
        ("rock", None, "no bracketed legal move"),
        ("[rock] or [paper]", None, "2 bracketed moves"),
        ("[rock] [rock]", None, "2 bracketed moves"),
        ("[lizard]", None, "no bracketed legal move"),
    ],
)
def test_bracketed_choice(text, index, error):
    legal = {"rock": 0, "paper": 1, "scissors": 2}
    got, why = parse_bracketed_choice(text, legal)
    assert got == index
    assert (why is None) if error is None else (error in why)
