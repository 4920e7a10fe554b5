model Q { question: str }
model A { label: enum("yes", "no") }
lm m = "openai/x" { temperature: 0.0 }
program p { input q: Q  a = decide A from q  output a }
data d = jsonl("rows.jsonl")
train p on d { reward exact_match()  optimizer random_few_shot()  runs 3 }
