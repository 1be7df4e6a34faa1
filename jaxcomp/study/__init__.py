"""Subjective studies: pairwise comparison (PC) and 2AFC; stimuli, designs, server, analysis.

`prepare` makes the stimuli and the manifest, `designs` chooses pairs, `server` collects votes in a
database, `analysis` screens subjects (`consistency`, golden units, response times) and scales the
votes (`scaling`: winning frequencies, Bradley-Terry, Thurstone Case V in JOD). `simulate` checks
the designs against simulated observers.

2AFC mode: `triplets` makes a study of BAPPS-layout triplets ("which is closer to the original?")
that the same server runs; `bapps` exports its screened votes as a judged BAPPS split.
"""
