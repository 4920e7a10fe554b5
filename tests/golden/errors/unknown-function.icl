model Q { question: str }
model A { answer: float }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data d = gsm8K()
train p on d {
    reward exact_mach()
    optimizer random_fewshot()
}
tool calc = pyhton("icldsl.tools:calculator")
tool clock = python("no colon here")
