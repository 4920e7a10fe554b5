model Q { question: str }
model A { answer: float }
lm solver = "local:/models/smollm2.bin" { n_parallel: 0 }
lm other = "local:/models/smollm2.gguf" { n_parallel: 4, n_ctx: 2048 }
program p {
    input q: Q
    a = generate A from q using solver
    b = generate A from a using other
    output b
}
