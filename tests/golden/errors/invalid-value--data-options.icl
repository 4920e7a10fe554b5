model Q { question: str }
model A { answer: str }
lm m = "openai/x"
program p { input q: Q  a = generate A from q  output a }
data d = csv("a.csv", test: "b.csv", split: 0.75)
train p on d { reward exact_match()  optimizer random_few_shot() }
