model Q { question: str }
model A { answer: float }
lm solver = "openai/gpt-4.1-mini" { base_url: "https://team:sk-proj-abc123@llm.example.com/v1" }
program p { input q: Q  a = generate A from q using solver  output a }
