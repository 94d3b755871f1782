"""Start the planner app with its Python dependencies already imported, so the first visitor does not wait.

`streamlit run app.py` imports pandas, scipy, plotly and the planner when the first browser session runs
the script (about 1.5 s on a 2-core machine); this launcher imports them before the server starts.

    python serve.py [streamlit run options, e.g. --server.port 8501]
"""

from __future__ import annotations

import sys
from pathlib import Path

import plotly.express  # noqa: F401
from streamlit.web.cli import main

import pages.common  # noqa: F401

if __name__ == "__main__":
    sys.exit(main(["run", str(Path(__file__).with_name("app.py")), *sys.argv[1:]]))
