"""engagement-platform: streaming analytics for content engagement, orchestrated by Dagster."""
