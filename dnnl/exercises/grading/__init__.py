"""The grader behind ``python -m dnnl.exercises.grade``, one concern per module, in the order a grade is made:

* :mod:`.manifest`: the teacher's list of notebooks, checks, functions, points, hints and limits;
* :mod:`.extract`: the definitions taken from the cell that defines each exercise function;
* :mod:`.sandbox`, :mod:`.limits`, :mod:`.child`, :mod:`.verdict`, :mod:`.guard`: the grading process
  (its own session, temp folder, environment, time and memory limits, Landlock) and what it reports;
* :mod:`.runner`, :mod:`.folder`: one submission, then a folder of them (``--jobs``);
* :mod:`.report`: grades.csv, grades.json, feedback pages and executed notebooks;
* :mod:`.preflight`, :mod:`.gradescope`, :mod:`.cli`.
"""
