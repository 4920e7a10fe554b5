model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data sums = jsonl("dta/sums.jsonl", test: "generated/test.jsonl")
train p on sums { reward exact_match() optimizer random_few_shot() }
