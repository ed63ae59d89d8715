"""python -m triage.conf --markdown | --write-readme"""

import sys

from triage.conf import README, markdown, with_reference

if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(markdown())
    elif sys.argv[1:] == ["--write-readme"]:
        README.write_text(with_reference(README.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.exit("usage: python -m triage.conf --markdown | --write-readme")
