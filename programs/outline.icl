// Nested and recursive models: an outline is sections, and a section has
// subsections (a model may contain itself through a list).

model Document {
    title: str "The document's title"
    body:  str "The document's text"
}

model Section {
    heading:     str(max_length: 80)         "A short heading"
    points:      list[str](max_items: 4)     "Key points, a few words each"
    subsections: list[Section](max_items: 3) "Finer sections, often none"
}

model Outline {
    sections:     list[Section](min_items: 1, max_items: 5) "The top-level sections"
    word_count:   int(min: 0) "How many words the body has"
    needs_review: bool        "Whether the text is unclear"
    summary:      str?        "One sentence, when the text allows"
}

lm writer = "local/smollm2-135m" { temperature: 0.0, max_tokens: 240 }

program outline "Outline a document" {
    input  doc: Document
    result = generate Outline from doc
    output result
}
