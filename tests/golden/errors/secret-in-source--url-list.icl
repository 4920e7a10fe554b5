model Q { question: str }
model A { answer: float }
lm solver = "openai/gpt-4.1-mini" { base_url: [env("PRIMARY_URL"), "http://bob:hunter22@b.example.com/v1"] }
lm backup = "vllm/qwen" { base_url: "https://llm.example.com/v1?token=tk-9f8e7d", max_tokens: 0 }
embedding vectors = "openai/text-embedding-3-small" { base_url: ["https://e.example.com/v1?api_key=k-123&v=2"] }
program p { input q: Q  a = generate A from q using solver  output a }
