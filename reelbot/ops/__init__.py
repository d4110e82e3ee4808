"""Running the bot: process roles, the health endpoint, log set-up."""
