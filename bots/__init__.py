"""The Telegram adapter: the agents' and clients' chat is a Telegram bot."""

# The messenger's name where the store keeps it as data: a client's account (`ClientIdentity`)
# and the bot's update ids taken in once (`crm.services.applied_updates`).
MESSENGER = "telegram"
