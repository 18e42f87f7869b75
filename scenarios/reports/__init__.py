"""Outputs from saved results: tables, statistics over seeds, figures, the paper's claims, the README's generated sections."""
