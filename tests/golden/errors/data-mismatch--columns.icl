model Review { txt: str }
model Verdict { label: enum("positive", "negative") }
lm judge = "local/smollm2-135m"
program classify { input r: Review  v = generate Verdict from r  output v }
data reviews = csv("data/reviews.csv")
train classify on reviews { reward exact_match() optimizer random_few_shot() }
