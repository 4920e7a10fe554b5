import "imports/a.icl"
import "imports/missing.icl"
model A { answer: str }
lm solver = "local/smollm2-135m"
program p { input s: Shared  a = generate A from s  output a }
