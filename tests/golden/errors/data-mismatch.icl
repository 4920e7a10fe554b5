model Q { text: str }
model A { answer: str  steps: int }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k(test_limit: 5)
train p on d { reward exact_match() optimizer random_few_shot() }
