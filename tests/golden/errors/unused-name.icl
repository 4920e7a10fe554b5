model Q { question: str }
model A { answer: float }
model Unused { x: int }
lm solver = "local/smollm2-135m"
lm spare = "local/smollm2-135m"
program p { input q: Q  a = generate A from q using solver  output a }
