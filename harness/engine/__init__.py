"""The shared engine: every method's prepared model is trained, evaluated, checkpointed and profiled here."""
