model Q { question: str }
model A { answer: float }
lm first = "openai/gpt-4.1-mini" { fallback: second }
lm second = "ollama/llama3.2" { fallback: first }
lm third = "vllm/qwen" { fallback: thrid, max_concurrency: 0, rpm: 0 }
program p {
    input q: Q
    a = generate A from q using first
    b = generate A from q using third
    output a
}
