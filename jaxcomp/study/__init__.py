"""Pairwise-comparison (PC) subjective study: stimuli, pair designs, vote server, analysis.

`prepare` makes the stimuli and the manifest, `designs` chooses pairs, `server` collects votes in a
database, `analysis` screens subjects (`consistency`, golden units, response times) and scales the
votes (`scaling`: winning frequencies, Bradley-Terry, Thurstone Case V in JOD). `simulate` checks
the designs against simulated observers.
"""
