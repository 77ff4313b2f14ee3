-- While a node refreshes a link's kept tokens (the Discord connector's guilds.join, RFC 6749
-- section 6): until when it holds the refresh. Claimed with one conditional UPDATE, so two
-- nodes never spend the same refresh token (Discord rotates it: the loser's refresh would be
-- refused, and the refused refresh would drop the tokens the winner just stored). NULL: nobody.
ALTER TABLE upstream_links ADD COLUMN tokens_refreshing_until TIMESTAMP;
