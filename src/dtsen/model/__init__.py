"""Ranking models learnt from the BPS measurements the rounds bring (issue 25): kept in the warehouse
(store), fitted and cross-validated (training, fit), described by a card, and used once a person
adopts one (adopt)."""
