"""Streamlit pages of the fleetwise planner (registered by app.py's st.navigation)."""
