model Q { question: str }
model A { answer: float }
lm solver = "opnai/gpt-4.1-mini"
lm other = "gpt-4.1-mini"
program p { input q: Q  a = generate A from q using solver  output a }
