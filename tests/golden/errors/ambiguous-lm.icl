model Q { question: str }
model A { answer: float }
lm fast = "local/smollm2-135m"
lm big = "openai/gpt-4.1-mini"
program p {
    input q: Q
    a = generate A from q
    output a
}
