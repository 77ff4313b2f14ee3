DROP TABLE held_secrets;
