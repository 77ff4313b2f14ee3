DROP TABLE discord_accounts;
