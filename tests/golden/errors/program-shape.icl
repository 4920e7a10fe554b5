model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p {
    a = generate A from a
}
program two {
    input q: Q
    input r: Q
    a = generate A from q
    output a
    output a
}
