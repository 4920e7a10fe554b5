import "/etc/passwd"
model Q { question: str }
