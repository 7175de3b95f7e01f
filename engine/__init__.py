"""batchyard: a Trio worker engine."""
