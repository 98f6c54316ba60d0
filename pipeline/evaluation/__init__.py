"""``zhijian eval``: the agreement measures (``metrics``: the figures of ``tools/score.py`` on result records)
and the labelled day judged outside the night (``day``). Training's report scores use ``metrics`` too."""
