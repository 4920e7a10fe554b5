import "b.icl"
model Shared { text: str }
