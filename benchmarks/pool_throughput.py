"""Pool throughput: what one shared, batching pool buys over per-agent generation, and over
what a user would write instead (Hugging Face ``model.generate`` on batches).

Four measurements in one process, on the same model and the very same requests:

(b) pool: N concurrent redteam games (attacker and defender are the same model, self-play)
    played by the rollout code, every turn a request to one InferencePool that batches them;
    the requests it served are recorded (with their seeds);
(a) raw: the limit — those recorded requests replayed through the backend's batched
    generation directly, B = N at a time (no pool, no games, no waiting between turns);
(g) generate: the recorded requests through ``model.generate``, B = N at a time, left-padded,
    the same sampling (temperature 1, no top-k, no top-p, the same token budget), each row's
    tokens counted up to its EOS as the pool counts them;
(c) naive: the recorded requests replayed one at a time (batch of one), as when each agent
    calls its own model (time-boxed by --naive-seconds).

Each prints completion tokens per second; the ratios (b)/(a), (b)/(g) and (b)/(c) are the
point. Sampling is temperature 1 with a per-request seed, so a replayed request generates
exactly the tokens it generated in the pool. Then a scaling table: the pool's tokens/s and
mean batch with N = 1, 4, 16, 64, 256 concurrent games (``--no-scaling`` skips it). Also
printed: the pool's memory for k policies as LoRA adapters on one base vs k full copies
(tensor bytes held by the pool).

    python benchmarks/pool_throughput.py                 # tiny model, N = 64
    python benchmarks/pool_throughput.py --json          # last line: one JSON object
    python benchmarks/pool_throughput.py --model PATH --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time

import torch

from sparring.agents import play_many
from sparring.agents.llm import LLMPolicy
from sparring.envs import make
from sparring.pool import GenerationRequest, InferencePool, PoolConfig, SamplingParams, serve_model
from sparring.pool.transformers_backend import generate_batch, render_request

SCALING = (1, 4, 16, 64, 256)


class RecordingPolicy(LLMPolicy):
    """An LLM policy that keeps every request it sends (to replay them for (a) and (c))."""

    def __init__(self, *args, log: list, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log

    def request(self, observation):
        request = super().request(observation)
        self.log.append(request)
        return request


def pool_tokens_per_s(pool: InferencePool, model: str, games: int, concurrency: int, sampling,
                      log: list) -> tuple[float, float]:
    """Tokens/s of the pool over the games, and the fraction of that time the backend ran."""
    def seats(index: int):
        return {seat: RecordingPolicy(model, pool, sampling, seed=index * 2 + i, log=log)
                for i, seat in enumerate(("attacker", "defender"))}

    before, busy = pool.stats.completion_tokens, pool.stats.busy_s
    start = time.perf_counter()
    asyncio.run(play_many(lambda: make("sparring/redteam-v0"), seats, range(games), concurrency))
    wall = time.perf_counter() - start
    return (pool.stats.completion_tokens - before) / wall, (pool.stats.busy_s - busy) / wall


def replay_tokens_per_s(pool: InferencePool, requests: list, batch: int, budget_s: float = float("inf")) -> float:
    loaded = pool.models[requests[0].policy]
    generator = torch.Generator().manual_seed(0)
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(requests), batch):
        # On the pool's own thread, as the pool runs its batches (torch's CPU thread pool
        # is per thread; comparing across threads would measure the threads, not batching).
        done = pool.run_on_backend_thread(generate_batch, loaded, requests[i: i + batch], generator)
        tokens += sum(len(g.completion_ids) for g in done)
        if time.perf_counter() - start > budget_s:
            break
    return tokens / (time.perf_counter() - start)


def generate_tokens_per_s(pool: InferencePool, requests: list, batch: int) -> float:
    """``model.generate`` on the requests, ``batch`` at a time, as a user would batch them."""
    loaded = pool.models[requests[0].policy]
    tok, model = loaded.tokenizer, loaded.model
    eos = tok.eos_token_id
    texts = [render_request(tok, r) for r in requests]
    budget = requests[0].sampling.max_new_tokens

    def run(chunk: list[str]) -> int:
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(loaded.device)
        with torch.no_grad():
            out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 max_new_tokens=budget, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:].tolist()
        return sum(row.index(eos) + 1 if eos in row else len(row) for row in new)

    torch.manual_seed(0)
    tokens, start = 0, time.perf_counter()
    for i in range(0, len(texts), batch):
        tokens += pool.run_on_backend_thread(run, texts[i: i + batch])
    return tokens / (time.perf_counter() - start)


def scaling(model_pool: InferencePool, policy: str, sampling, sizes=SCALING) -> list[dict]:
    """The pool's tokens/s and mean batch with N concurrent games, for each N (2N games, at
    least 8), each N on a pool of its own whose batches may hold all N games' turns."""
    loaded = model_pool.models[policy]
    rows = []
    for n in sizes:
        pool = InferencePool(PoolConfig(max_batch_size=max(n, 1), max_wait_ms=5))
        pool.add_policy(policy, loaded.model, loaded.tokenizer, device=str(loaded.device))
        tok_s, _ = pool_tokens_per_s(pool, policy, max(2 * n, 8), n, sampling, [])
        rows.append({"n": n, "tok_s": round(tok_s, 1), "mean_batch": round(pool.stats.mean_batch_size, 1)})
    return rows


def adapter_memory(model: str, k: int, device: str) -> tuple[float, float]:
    from peft import LoraConfig

    with_adapters = InferencePool()
    base = serve_model(with_adapters, model)
    for i in range(k):
        with_adapters.add_adapter(f"adapter-{i}", base, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
    copies = InferencePool()
    for i in range(k):
        copies.add_policy(f"copy-{i}", model, device=device)
    return with_adapters.memory_bytes() / 2**20, copies.memory_bytes() / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="'tiny', a local path or a hub id")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--games", type=int, default=64, help="N: concurrent redteam games")
    parser.add_argument("--rounds", type=int, default=8,
                        help="games played = rounds x N (more rounds: less of the run is the tail)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--naive-seconds", type=float, default=20.0, help="time budget of (c)")
    parser.add_argument("--adapters", type=int, default=4, help="k policies for the memory figures")
    parser.add_argument("--no-scaling", dest="scaling", action="store_false", help="skip the scaling table")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=args.max_new_tokens)
    pool = InferencePool(PoolConfig(max_batch_size=args.games, max_wait_ms=5))
    policy = serve_model(pool, args.model)
    if args.device != "cpu":
        pool.models[policy].model.to(args.device)
        pool.models[policy].device = torch.device(args.device)
    warm = [GenerationRequest(policy, "warm up", dataclasses.replace(sampling, seed=i)) for i in range(args.games)]
    replay_tokens_per_s(pool, warm, args.games)

    served: list[GenerationRequest] = []
    pooled, busy = pool_tokens_per_s(pool, args.model, args.games * args.rounds, args.games, sampling, served)
    raw = replay_tokens_per_s(pool, served, args.games)
    generated = generate_tokens_per_s(pool, served, args.games)
    naive = replay_tokens_per_s(pool, served, 1, budget_s=args.naive_seconds)
    table = scaling(pool, policy, sampling) if args.scaling else []
    lora_mb, copies_mb = adapter_memory(args.model, args.adapters, args.device)
    summary = {
        "raw_tok_s": round(raw, 1), "pool_tok_s": round(pooled, 1), "naive_tok_s": round(naive, 1),
        "generate_tok_s": round(generated, 1), "pool_vs_generate": round(pooled / generated, 3),
        "pool_vs_raw": round(pooled / raw, 3), "pool_vs_naive": round(pooled / naive, 2), "scaling": table,
        "lora_mem_mb": round(lora_mb, 2), "copies_mem_mb": round(copies_mb, 2), "n_games": args.games,
        "adapters": args.adapters, "mean_batch_size": round(pool.stats.mean_batch_size, 1),
        "backend_busy_fraction": round(busy, 3),
        "max_new_tokens": args.max_new_tokens, "model": args.model, "device": args.device,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"(a) raw batched backend, B={args.games}:  {raw:10.0f} tok/s")
        print(f"(b) pool, {args.games} concurrent games:    {pooled:10.0f} tok/s   "
              f"(mean batch {summary['mean_batch_size']})")
        print(f"(g) model.generate, B={args.games}:       {generated:10.0f} tok/s")
        print(f"(c) naive per-request:          {naive:10.0f} tok/s")
        print(f"(b)/(a) = {summary['pool_vs_raw']:.2f}   (b)/(g) = {summary['pool_vs_generate']:.2f}   "
              f"(b)/(c) = {summary['pool_vs_naive']:.1f}")
        if table:
            print("concurrent games   tok/s   mean batch")
            for row in table:
                print(f"{row['n']:>16} {row['tok_s']:>7.0f} {row['mean_batch']:>12.1f}")
        print(f"memory for {args.adapters} policies: LoRA adapters {lora_mb:.1f} MB vs full copies {copies_mb:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
