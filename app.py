"""fleetwise planner: the Streamlit entry point. One page per view under pages/; planning lives in planner/.

streamlit run app.py
"""

from __future__ import annotations

import streamlit as st

from pages.common import workers_started

st.set_page_config(page_title="fleetwise planner", page_icon=":material/dns:", layout="wide")

PAGES = [
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:", default=True),
    st.Page("pages/scenario.py", title="Scenario", icon=":material/traffic:"),
    st.Page("pages/sizing.py", title="Fleet sizing", icon=":material/calculate:"),
    st.Page("pages/slo_explorer.py", title="SLO explorer", icon=":material/tune:"),
    st.Page("pages/compare.py", title="Compare runs", icon=":material/compare_arrows:"),
    st.Page("pages/compare_plans.py", title="Compare plans", icon=":material/balance:"),
    st.Page("pages/report.py", title="Report", icon=":material/description:"),
]

st.sidebar.caption(
    "Every figure says whether it comes from a **measured** run or an **assumed** profile. "
    "Prices come from the price book (data/prices.yaml: an example; replace its figures with your own)."
)
workers_started()
st.navigation(PAGES).run()
