"""The trusted grader (``python autograde.py`` is its command line).

- ``checks/hw5.py``, ``checks/hw2.py``: each assignment's spec (the handout's numbers) and its
  checks with their points, in grading order: what a TA reads to see what is graded.
- ``registry.py``: ``Check``, the import checks, the context, the typed outcomes.
- ``protocol.py``: the reply schemas and parser; comparisons with the reference.
- ``runner.py``: the channel to the worker, the run loop, ``grade_assignment``.
- ``sandbox.py``: how the worker is started, limited and killed.
- ``report.py``, ``bundle.py``: results.json and the table; the Gradescope zip.
The untrusted side is ``autograde_worker.py`` (one file: it runs alone in the scratch folder).
"""
