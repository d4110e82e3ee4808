"""``python bot.py --sandbox``: the real bot against the doubles, with a web page (SPEC §7)."""
