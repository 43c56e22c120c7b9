"""One file per algorithm: dql.py, idql.py, edp.py, swg.py."""
