"""Pen2Sword (paper §4): transfer a small expert's input embedding into a large target model."""
