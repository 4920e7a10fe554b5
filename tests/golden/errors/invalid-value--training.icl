model Q { question: str }
model A { answer: float  label: enum("a", "b")? }
lm solver = "local/smollm2-135m"
embedding minilm = "local/all-minilm-l6-v2"
embedding mini = "nowhere/x"
program p { input q: Q  a = generate A from q  output a }
data d = gsm8k()
train p on d {
    reward          exact_match(in_mask: ["answer.value"])
    optimizer       random_few_shot()
    optimizer       random_few_shot()
    early_stopping  patience 0
    budget          { calls: 0, dollars: 5 }
    checkpoint      best val_f1_lable max
}
