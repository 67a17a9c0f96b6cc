"""Task bodies: one ``task_<name>.py`` per ``xml/<name>.xml``, installed as ``almaqa_casa.tasks``.

Each body is a function named like its task, taking the XML parameters as
keywords (already checked, defaults applied) and returning a result dict.
Bodies only turn parameters into library calls; algorithms live in ``almaqa_casa``.
"""
