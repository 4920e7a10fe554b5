model Q { question: str }
model A { answer: float }
lm solver = "openai/gpt-4.1-mini" { api_key: "sk-proj-abc123", fallback: local }
lm local = "anthropic/claude-haiku-4-5" { api_key: env("ANTHROPIC_API_KEY") }
program p { input q: Q  a = generate A from q using solver  output a }
