"""The Streamlit dashboard: the live leaderboard from Redis, history from ClickHouse."""
