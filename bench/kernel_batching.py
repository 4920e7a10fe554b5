"""What a token costs llama.cpp alone and in a batch, by weight type: why batching pays off for some.

Loads the bundled model (its file's weights, or requantized with `--weights`) in
one llama.cpp context laid out as the local client lays it out (a KV stream per
sequence), fills 8 sequences with `--context` tokens, then times decode steps
of 1 to 8 sequences (one new token each, with logits, as answers decode) and a
67-token prompt chunk, at each thread count.

    python bench/kernel_batching.py [--weights q4_0] [--threads 1 2] [--context 600]
"""

from __future__ import annotations

import argparse
import random
import time

from icldsl.lm.local import FILE_WEIGHTS, WEIGHTS, extra_buffer_types, requantized, resolve_model
from icldsl.lm.local.models import bindings

SEQUENCES = 8
PROMPT_CHUNK = 67  # new tokens per question in bench/local_throughput.py's requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=FILE_WEIGHTS, choices=[FILE_WEIGHTS, *WEIGHTS])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--context", type=int, default=600, help="tokens already in each sequence")
    parser.add_argument("--steps", type=int, default=20, help="decode steps timed per batch size")
    args = parser.parse_args()

    ll = bindings()
    path = resolve_model("smollm2-135m")
    if args.weights != FILE_WEIGHTS:
        path = requantized(path, args.weights)
    params = ll.llama_model_default_params()
    params.use_extra_bufts = extra_buffer_types()
    model = ll.llama_model_load_from_file(str(path).encode(), params)
    cparams = ll.llama_context_default_params()
    cparams.n_ctx = 2048 * SEQUENCES
    cparams.n_batch = cparams.n_ubatch = 512
    cparams.n_seq_max = SEQUENCES
    cparams.kv_unified = False
    cparams.flash_attn_type = ll.LLAMA_FLASH_ATTN_TYPE_DISABLED
    ctx = ll.llama_init_from_model(model, cparams)
    batch = ll.llama_batch_init(512, 0, 1)
    rng = random.Random(0)

    def decode(entries: list[tuple[int, list[int], int]]) -> None:
        """Each (sequence, tokens, first position); logits for each sequence's last token."""
        n = 0
        for seq, tokens, start in entries:
            for i, token in enumerate(tokens):
                batch.token[n], batch.pos[n], batch.n_seq_id[n] = token, start + i, 1
                batch.seq_id[n][0], batch.logits[n] = seq, i == len(tokens) - 1
                n += 1
        batch.n_tokens = n
        if ll.llama_decode(ctx, batch) != 0:
            raise SystemExit("llama_decode failed")

    def tokens(n: int) -> list[int]:
        return [rng.randrange(1000, 40000) for _ in range(n)]

    for seq in range(SEQUENCES):
        for start in range(0, args.context, 300):
            decode([(seq, tokens(min(300, args.context - start)), start)])
    positions = [args.context] * SEQUENCES
    print(f"{path.name}, extra buffer types {'on' if params.use_extra_bufts else 'off'}, "
          f"{args.context} tokens of context")
    for threads in args.threads:
        ll.llama_set_n_threads(ctx, threads, threads)
        for size in range(1, SEQUENCES + 1):
            start = time.perf_counter()
            for _ in range(args.steps):
                decode([(seq, tokens(1), positions[seq]) for seq in range(size)])
                for seq in range(size):
                    positions[seq] += 1
            step = (time.perf_counter() - start) / args.steps
            print(f"threads {threads}, batch of {size}: {1000 * step:.1f} ms a step, {1000 * step / size:.2f} ms a token")
        memory = ll.llama_get_memory(ctx)
        start = time.perf_counter()
        for _ in range(3):
            ll.llama_memory_seq_rm(memory, 0, positions[0], -1)
            decode([(0, tokens(PROMPT_CHUNK), positions[0])])
        chunk = (time.perf_counter() - start) / 3
        ll.llama_memory_seq_rm(memory, 0, positions[0], -1)
        print(f"threads {threads}, prompt chunk of {PROMPT_CHUNK}: {1000 * chunk / PROMPT_CHUNK:.2f} ms a token")
    ll.llama_batch_free(batch)
    ll.llama_free(ctx)
    ll.llama_model_free(model)


if __name__ == "__main__":
    main()
