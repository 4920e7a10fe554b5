model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = jsonl(test: "test.jsonl")
train p on d { reward exact_match() optimizer random_few_shot() }
