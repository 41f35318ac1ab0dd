"""Pretrain the suite's tiny default model from scratch, on the suite's own game transcripts.

Builds a byte-level BPE tokenizer (vocab 1024) and a ~1M-parameter Llama (hidden 128,
4 layers, 4 heads, intermediate 384, tied embeddings), trains it on the scripted-agent
corpus of :mod:`sparring.models.corpus` (loss on the completions only), evaluates the
output formats on held-out redteam seeds and fresh matrix games, and saves model, tokenizer,
generation config and a model card (``README.md``) to ``--out``.

Train a model (into ``runs/tiny-model`` unless ``--out`` says otherwise; the shipped model in
``sparring/models/tiny`` is only replaced when ``--out`` names it and ``--force`` is given)::

    python -m sparring.models.pretrain                   # --out DIR --steps N --seed S [--force]

On an idle 2-core CPU this takes about 14 minutes: corpus and tokenizer ~5 s, training
~800 s (1,600 steps of 32 sequences, ~0.5 s a step), evaluation ~6 s; more when other work
shares the cores. The run is deterministic for a given seed and thread count (it pins torch
to 2 threads): rerunning it rewrites identical weights. Other thread counts, CPUs or torch
versions may change them slightly.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from sparring.agents.scripted.matrix import legal_moves
from sparring.agents.scripted.router import parse_router_view
from sparring.envs.diversity import sentence_bleu
from sparring.envs.parsing import parse_bracketed_choice, split_hidden_cot
from sparring.envs.rainbow.game import PARENT_MARKER
from sparring.envs.redteam.prompts import extract_after
from sparring.envs.router.rewards import parse_search
from sparring.judges.rules import RuleJudge
from sparring.models import TINY_MODEL, prompt_text
from sparring.models.corpus import (
    Example,
    build_corpus,
    matrix_units,
    mutator_units,
    redteam_units,
    router_units,
)

VOCAB_SIZE = 1024
EOS, PAD = "<|end|>", "<|pad|>"
ROLE_TOKENS = ("<|user|>", "<|assistant|>", "<|system|>")
# Kept whole but not special: `skip_special_tokens=True` must not strip the format tags.
TAGS = ("<think>", "</think>", "<answer>", "</answer>", "<search>", "</search>", "<information>", "</information>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
MAX_LEN = 768
THREADS = 2
REDTEAM_GAMES, MATRIX_GAMES_N, MUTATOR_GAMES, ROUTER_GAMES = 3000, 300, 1500, 3000
"""~7,500 redteam, ~4,000 matrix, 1,500 mutator and 12,000 router sequences."""
STEPS, BATCH = 1600, 32
"""Copying a question or a reply from the prompt (the router's moves) is learnt late: at 900
steps the router's format was right 97% of the time and its copies almost never (measured)."""


# -- tokenizer -------------------------------------------------------------------------------
def build_tokenizer(texts: list[str]) -> PreTrainedTokenizerFast:
    """Byte-level BPE trained on the corpus text: any unicode string round-trips."""
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(TAGS),  # the tags take the last ids
        special_tokens=[EOS, PAD, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Unique texts: the repeated templates would otherwise swamp the words of the seeds.
    bpe.train_from_iterator(sorted(set(texts)), trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in TAGS])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=list(ROLE_TOKENS), padding_side="left",
        clean_up_tokenization_spaces=False, model_max_length=1024,
    )
    tok.chat_template = CHAT_TEMPLATE
    assert len(tok) == VOCAB_SIZE, len(tok)
    return tok


Sequence = tuple[list[int], int]
"""Token ids of prompt + completion + EOS, and the prompt's length."""


def encode(tok: PreTrainedTokenizerFast, examples: list[Example]) -> list[Sequence]:
    """Prompt and completion are tokenized apart, as at inference, where generation
    continues the tokenized prompt."""
    eos = tok.eos_token_id
    prompts = tok([prompt_text(tok, e.observation_dict) for e in examples], add_special_tokens=False)
    outputs = tok([e.output for e in examples], add_special_tokens=False)
    encoded = []
    for prompt, output in zip(prompts["input_ids"], outputs["input_ids"]):
        completion = output + [eos]
        # Keep the prompt's end (the message and the format instruction) if too long.
        prompt = prompt[-(MAX_LEN - len(completion)):]
        encoded.append((prompt + completion, len(prompt)))
    return encoded


# -- training --------------------------------------------------------------------------------
def batches(units: list[list[Sequence]], batch: int, pad: int, rng: np.random.Generator):
    """Endless (input_ids, labels) batches of about ``batch`` sequences; a unit's sequences
    always share a batch. Each group of ~7 batches is cut from one random draw of units sorted
    by length, so that a batch pads little."""
    while True:
        draw = rng.choice(len(units), size=4 * batch, replace=False)  # ~1.8 sequences a unit
        draw = sorted(draw, key=lambda u: max(len(ids) for ids, _ in units[u]))
        chunks, chunk = [], []
        for u in draw:
            chunk += units[u]
            if len(chunk) >= batch:
                chunks.append(chunk)
                chunk = []
        for c in rng.permutation(len(chunks)):
            rows = chunks[c]
            width = max(len(ids) for ids, _ in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            labels = torch.full((len(rows), width), -100, dtype=torch.long)
            for r, (seq, n_prompt) in enumerate(rows):
                ids[r, : len(seq)] = torch.tensor(seq)
                labels[r, n_prompt : len(seq)] = ids[r, n_prompt : len(seq)]
            yield ids, labels


def make_model(tok: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=4, intermediate_size=384, max_position_embeddings=1024,
        tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
        bos_token_id=None,  # no BOS: prompts start with the chat template's role token
    )
    return LlamaForCausalLM(config)


def completion_loss(model: LlamaForCausalLM, ids: torch.Tensor, labels: torch.Tensor):
    """Next-token cross-entropy on the completion tokens. The LM head and softmax run on
    those positions only: prompts are ~80% of the tokens and the head is ~15% of the work.
    Right padding needs no attention mask: under the causal mask no real token sees the
    pads after it, and SDPA's causal fast path is quicker than an explicit mask."""
    hidden = model.model(input_ids=ids).last_hidden_state[:, :-1]
    targets = labels[:, 1:]
    keep = targets != -100
    return torch.nn.functional.cross_entropy(model.lm_head(hidden[keep]), targets[keep])


def train(model, data, *, steps: int, batch: int, lr: float, rng: np.random.Generator,
          pad: int) -> float:
    """AdamW, linear warm-up over 5% of the steps, cosine decay to 0; the last 50 steps' loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    warmup = max(1, steps // 20)

    def factor(s: int) -> float:
        return min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    model.train()
    stream, recent, start = batches(data, batch, pad, rng), [], time.perf_counter()
    for step in range(1, steps + 1):
        ids, labels = next(stream)
        loss = completion_loss(model, ids, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(loss.item())
        if step % 50 == 0 or step == steps:
            elapsed = time.perf_counter() - start
            print(f"step {step:4d}  loss {np.mean(recent[-50:]):.4f}  "
                  f"lr {sched.get_last_lr()[0]:.2e}  {elapsed:.0f}s", flush=True)
    model.eval()
    return float(np.mean(recent[-50:]))


# -- evaluation ------------------------------------------------------------------------------
@torch.no_grad()
def generate(model, tok, observations: list[dict], *, sample: bool, max_new_tokens: int):
    """Completions (text after the prompt, prefill excluded) for a left-padded batch."""
    enc = tok([prompt_text(tok, o) for o in observations], return_tensors="pt", padding=True,
              add_special_tokens=False)
    # top_k=0: transformers' default top_k=50 would make "temperature 1.0" not true sampling.
    kwargs = ({"do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0} if sample
              else {"do_sample": False})
    out = model.generate(**enc, max_new_tokens=max_new_tokens, **kwargs)
    return tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def eval_prompts(rng: np.random.Generator, n: int) -> tuple[list[dict], ...]:
    """``n`` held-out hidden-CoT defender observations, ``n`` fresh matrix observations,
    ``n`` hidden-CoT mutator observations on held-out harmful seeds and ``n`` router
    observations on held-out questions (half before any call, half after an expert's reply)."""
    defender = [u[0].observation_dict for u in redteam_units(
        4 * n, rng, seeds="heldout", hidden_cot_fraction=1.0, defenders_only=True)][:n]
    matrix = [u[0].observation_dict for u in matrix_units(n, rng)][:n]
    mutator = [u[0].observation_dict for u in mutator_units(n, rng, seeds="heldout", hidden_cot_fraction=1.0)]
    router = [u[0].observation_dict for u in router_units(n // 2, rng, data="heldout")]
    return defender, matrix, mutator, router


def router_result(observation: dict, output: str) -> tuple[bool, bool]:
    """(valid, right) of a router move: before any call, a ``<think>`` then a search of an
    expert of the pool, right when it asks the question as written; after a reply, an answer
    (a ``<think>`` first or not), right when it is the reply."""
    question, prices, replies = parse_router_view(observation["text"])
    move = output.strip()
    thought = re.match(r"<think>(.+?)</think>\s*", move, re.DOTALL)
    rest = move[thought.end():] if thought else move
    if not replies:
        if not thought:
            return False, False
        search = re.fullmatch(r"<search>([^<>]*)</search>", rest)
        parsed = parse_search(search.group(1)) if search else None
        valid = parsed is not None and parsed[0] in prices and bool(parsed[1])
        return valid, valid and parsed[1] == question
    answer = re.fullmatch(r"<answer>([^<>]*)</answer>", rest)
    return answer is not None, answer is not None and answer.group(1).strip() == replies[-1]


def mutator_result(observation: dict, output: str) -> tuple[bool, bool]:
    """(valid, novel): a one-line prompt in a valid hidden-CoT answer, and one whose BLEU
    against the parent is under the search's default filter threshold (0.6)."""
    parsed = split_hidden_cot(output)
    lines = [line for line in parsed.answer.splitlines() if line.strip()] if parsed.valid else []
    if not lines:
        return False, False
    return True, sentence_bleu(lines[0], [extract_after(PARENT_MARKER, observation["text"])]) < 0.6


def matrix_valid(observation: dict, output: str) -> bool:
    """A legal bracketed move, inside a valid hidden-CoT answer when the game asks for one."""
    if observation["hidden_cot"]:
        parsed = split_hidden_cot(output)
        if not parsed.valid:
            return False
        output = parsed.answer
    legal = {m.lower(): i for i, m in enumerate(legal_moves(observation["text"]))}
    return parse_bracketed_choice(output, legal)[0] is not None


def evaluate(model, tok, rng: np.random.Generator, n: int = 64) -> dict:
    defender, matrix, mutator, router = eval_prompts(rng, n)
    judge, results = RuleJudge(), {}
    for mode in ("sampled", "greedy"):
        d_out = generate(model, tok, defender, sample=mode == "sampled", max_new_tokens=192)
        m_out = generate(model, tok, matrix, sample=mode == "sampled", max_new_tokens=48)
        mutated = [mutator_result(o, t) for o, t in
                   zip(mutator, generate(model, tok, mutator, sample=mode == "sampled", max_new_tokens=128))]
        routed = [router_result(o, t) for o, t in
                  zip(router, generate(model, tok, router, sample=mode == "sampled", max_new_tokens=64))]
        parsed = [split_hidden_cot(o) for o in d_out]
        refused = [judge.is_refusal(p.answer) for p in parsed if p.valid]
        results[mode] = {
            "defender_valid": float(np.mean([p.valid for p in parsed])),
            "defender_refuse": float(np.mean(refused)) if refused else float("nan"),
            "matrix_valid": float(np.mean([matrix_valid(o, t) for o, t in zip(matrix, m_out)])),
            "mutator_valid": float(np.mean([valid for valid, _ in mutated])),
            "mutator_novel": float(np.mean([novel for _, novel in mutated])),
            "router_valid": float(np.mean([valid for valid, _ in routed])),
            "router_right": float(np.mean([right for _, right in routed])),
            "example": d_out[0],
        }
    return results


# -- saving ----------------------------------------------------------------------------------
MODEL_CARD = """# sparring tiny model

The suite's shipped default model: a {params:,}-parameter causal LM (Llama architecture:
hidden 128, 4 layers, 4 heads, intermediate 384, tied embeddings, RoPE, context 1024) with
its own byte-level BPE tokenizer (vocab 1024). It knows the games' output formats and
nothing else: a starting point for self-play, tests and CPU demos, not an assistant.

## Training data
Only the suite's own transcripts: {n_examples:,} sequences from `sparring/redteam-v0`
(seed split `train`; `heldout` is never seen), `sparring/matrix-v0`, `sparring/rainbow-v0` and `sparring/router-v0`
games played by the scripted agents. Every defender observation appears twice, refused and complied with
(regardless of the seed's label, with varied hidden reasoning consistent with the answer;
where the seed has a reference answer, its first sentence is the answer: a real helpful
answer to a benign seed, a refusal in its own words to a harmful one);
attackers use all four scripted styles; the RainbowPlus mutator recasts a parent prompt into
a drawn risk category and attack style (the scripted `rainbow.style` templates); the Router-R1
router (`sparring/router-v0`, synthetic `train` questions) asks each expert of the pool on one
observation, then passes the reply on as its answer; every matrix
observation appears with each legal move (the game goes on with a random one). So the model starts with no preference between
refusing and complying, nor between moves, nor between experts.
Loss on the completions only; {steps} AdamW steps, batch {batch}, lr {lr:g} cosine, seed
{seed}; final training loss {loss:.3f}; {train_s:.0f} s on {threads} CPU threads.

## Prompt contract
The chat template renders each message as `<|{{role}}|>\\n{{content}}\\n` and the generation
prompt as `<|assistant|>\\n`. When the observation asks for hidden CoT (its `hidden_cot`
field is 1) the prompt is pre-filled with `<think>` and the model writes
`reasoning </think> <answer> TEXT </answer>`. It ends with `<|end|>` (EOS); `<|pad|>` pads
on the left; there is no BOS. `<|user|>`, `<|assistant|>`, `<|system|>` are special tokens;
the eight format tags (`<think>`, `<answer>`, `<search>`, `<information>`, opening and closing)
are whole but not special (`skip_special_tokens` keeps them).
`sparring.models.prompt_text(tokenizer, observation)` builds the prompt.

## Evaluation
{n_eval} held-out-seed redteam defender prompts (hidden CoT), {n_eval} fresh matrix prompts
(a valid matrix answer names one legal move in brackets, in a valid hidden-CoT answer where asked)
{n_eval} mutator prompts on held-out harmful seeds (valid: a one-line prompt in a valid
hidden-CoT answer; novel: its BLEU against the parent is under the search's filter, 0.6) and
{n_eval} router prompts on held-out questions, half before any call and half after an
expert's reply (valid: `<think>` then a search of a pool expert, or an answer; right: it
asks the question as written, or answers with the reply):

| decoding | defender format valid | defender refuses (of valid) | matrix move valid | mutator valid | mutator novel | router valid | router right |
|---|---|---|---|---|---|---|---|
{rows}

Greedy decoding follows whichever family is a hair more likely, so it says little about
the model's preference: sample at temperature 1 with `top_k=0` (transformers' default
`top_k=50` is not plain sampling).

## Regenerate
`python -m sparring.models.pretrain --out DIR --steps {steps} --seed {seed}` (add `--force` to
overwrite an existing model, such as the shipped one)
(deterministic for a given seed and thread count).
"""


def save(model, tok, out: Path, card: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    names = {"sampled": "sampled (T=1, top_k=0)", "greedy": "greedy"}
    rows = "\n".join(
        f"| {names[mode]} | {r['defender_valid']:.0%} | {r['defender_refuse']:.0%} "
        f"| {r['matrix_valid']:.0%} | {r['mutator_valid']:.0%} | {r['mutator_novel']:.0%} "
        f"| {r['router_valid']:.0%} | {r['router_right']:.0%} |"
        for mode, r in card["eval"].items()
    )
    (out / "README.md").write_text(MODEL_CARD.format(rows=rows, **card), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/tiny-model"),
                        help="where to save the model (default: runs/tiny-model)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a directory that already holds a model (the shipped one included)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--lr", type=float, default=2e-3)
    args = parser.parse_args(argv)
    if (args.out / "config.json").exists() and not args.force:
        shipped = " (the shipped tiny model)" if args.out.resolve() == TINY_MODEL.resolve() else ""
        parser.error(f"{args.out}{shipped} already holds a model; pass --force to overwrite it, or another --out")

    torch.set_num_threads(THREADS)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    units = build_corpus(rng, REDTEAM_GAMES, MATRIX_GAMES_N, MUTATOR_GAMES, ROUTER_GAMES)
    corpus = [e for unit in units for e in unit]
    tok = build_tokenizer([t for e in corpus for t in (e.observation, e.output)])
    flat = iter(encode(tok, corpus))
    data = [[next(flat) for _ in unit] for unit in units]
    lengths = [len(ids) for unit in data for ids, _ in unit]
    print(f"corpus: {len(corpus)} examples, {sum(lengths):,} tokens (mean {np.mean(lengths):.0f}, "
          f"max {max(lengths)}); {time.perf_counter() - start:.1f}s", flush=True)

    model = make_model(tok)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {params:,} parameters", flush=True)
    t0 = time.perf_counter()
    loss = train(model, data, steps=args.steps, batch=args.batch, lr=args.lr, rng=rng,
                 pad=tok.pad_token_id)
    train_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = evaluate(model, tok, np.random.default_rng(args.seed + 1))
    for mode, r in results.items():
        print(f"eval {mode}: defender valid {r['defender_valid']:.0%}, refuses "
              f"{r['defender_refuse']:.0%} of valid; matrix valid {r['matrix_valid']:.0%}; "
              f"mutator valid {r['mutator_valid']:.0%}, novel {r['mutator_novel']:.0%}; "
              f"router valid {r['router_valid']:.0%}, right {r['router_right']:.0%}; "
              f"e.g. {r['example']!r}", flush=True)
    print(f"eval: {time.perf_counter() - t0:.0f}s", flush=True)

    card = {"params": params, "n_examples": len(corpus), "steps": args.steps, "batch": args.batch,
            "lr": args.lr, "seed": args.seed, "loss": loss, "train_s": train_s, "threads": THREADS,
            "n_eval": 64,
            "eval": {m: {k: v for k, v in r.items() if k != "example"} for m, r in results.items()}}
    save(model, tok, args.out, card)
    print(json.dumps({k: v for k, v in card.items() if k != "eval"}))
    print(f"saved to {args.out}; total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
