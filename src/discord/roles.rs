//! What the bot may do in its guild, from the guild's roles and its own (pure; Discord's
//! "Permissions" documentation): its permissions are those of `@everyone` (the role whose id is
//! the guild's) and of each of its roles, all of them when one has Administrator; it may give
//! or take only roles below its highest role, and never a managed one (a bot's own role, the
//! server booster role: Discord gives and takes those itself).

use twilight_model::guild::{Permissions, Role};

/// The permissions the connector needs, with their names in Discord's settings and why.
pub const NEEDED: [(Permissions, &str, &str); 3] = [
    (
        Permissions::MANAGE_ROLES,
        "Manage Roles",
        "to give and take the mapped roles",
    ),
    (
        Permissions::MANAGE_NICKNAMES,
        "Manage Nicknames",
        "to set members' nicknames (enforce_discord_nicknames)",
    ),
    (
        Permissions::CREATE_INVITE,
        "Create Instant Invite",
        "to add linked users to the server with their guilds.join permission",
    ),
];

/// Permissions a mappable role must not give, with their names in Discord's settings: staff,
/// who may add ordinary users to groups, would otherwise hand out these powers in Discord
/// through a mapping.
pub const DANGEROUS: [(Permissions, &str); 8] = [
    (Permissions::ADMINISTRATOR, "Administrator"),
    (Permissions::MANAGE_GUILD, "Manage Server"),
    (Permissions::MANAGE_ROLES, "Manage Roles"),
    (Permissions::MANAGE_CHANNELS, "Manage Channels"),
    (Permissions::BAN_MEMBERS, "Ban Members"),
    (Permissions::KICK_MEMBERS, "Kick Members"),
    (Permissions::MANAGE_WEBHOOKS, "Manage Webhooks"),
    (
        Permissions::MODERATE_MEMBERS,
        "Moderate Members (time-outs)",
    ),
];

/// Why a role whose permissions are `permissions` (Discord's bits) cannot be mapped, in words
/// ("gives Administrator, Ban Members: …"); `None` when it gives none of [`DANGEROUS`].
#[must_use]
pub fn dangerous_in_words(permissions: Permissions) -> Option<String> {
    let given: Vec<&str> = DANGEROUS
        .iter()
        .filter(|(p, _)| permissions.contains(*p))
        .map(|(_, name)| *name)
        .collect();
    (!given.is_empty()).then(|| {
        format!(
            "gives {}: whoever may add users to its groups could hand these powers out in Discord",
            given.join(", ")
        )
    })
}

/// The bot's standing in the guild.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BotStanding {
    /// Its permissions in the guild.
    pub permissions: Permissions,
    /// The position of its highest role (0: only `@everyone`).
    pub top_position: i64,
}

impl BotStanding {
    /// The standing of a member holding `member_roles` in a guild (`guild_id`) with `roles`.
    #[must_use]
    pub fn of(guild_id: u64, roles: &[Role], member_roles: &[u64]) -> Self {
        let mut permissions = Permissions::empty();
        let mut top_position = 0;
        for role in roles {
            let id = role.id.get();
            if id == guild_id || member_roles.contains(&id) {
                permissions |= role.permissions;
            }
            if member_roles.contains(&id) {
                top_position = top_position.max(role.position);
            }
        }
        if permissions.contains(Permissions::ADMINISTRATOR) {
            permissions = Permissions::all();
        }
        Self {
            permissions,
            top_position,
        }
    }

    /// Why `role` cannot be mapped (given and taken by the bot), in words — every reason,
    /// joined with "; " —; `None` when it can. `guild_id` is the guild's (its `@everyone` role
    /// has the same id).
    #[must_use]
    pub fn unmappable(&self, guild_id: u64, role: &Role) -> Option<String> {
        if role.id.get() == guild_id {
            return Some("@everyone: every member has it".to_owned());
        }
        let mut why = Vec::new();
        if role.managed {
            why.push(
                "managed by an integration (a bot's own role or the booster role): Discord gives and takes it itself"
                    .to_owned(),
            );
        }
        if let Some(dangerous) = dangerous_in_words(role.permissions) {
            why.push(dangerous);
        }
        if role.position >= self.top_position {
            why.push(
                "at or above the bot's highest role: Discord lets the bot give only roles below its own (move the bot's role higher in Server Settings → Roles)"
                    .to_owned(),
            );
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// Each needed permission's name, whether the bot has it, and what it is for.
    #[must_use]
    pub fn needed(&self) -> Vec<(&'static str, bool, &'static str)> {
        NEEDED
            .iter()
            .map(|(p, name, why)| (*name, self.permissions.contains(*p), *why))
            .collect()
    }

    /// What is missing, in words ("" when nothing is).
    #[must_use]
    pub fn missing_in_words(&self) -> String {
        let missing: Vec<String> = self
            .needed()
            .into_iter()
            .filter(|(_, has, _)| !has)
            .map(|(name, _, why)| format!("{name} ({why})"))
            .collect();
        if missing.is_empty() {
            String::new()
        } else {
            format!(
                "The bot lacks {}. Give its role these permissions in Server Settings → Roles.",
                missing.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use twilight_model::guild::RoleFlags;
    use twilight_model::id::Id;

    fn role(id: u64, position: i64, permissions: Permissions, managed: bool) -> Role {
        Role {
            color: 0,
            hoist: false,
            icon: None,
            id: Id::new(id),
            managed,
            mentionable: false,
            name: format!("r{id}"),
            permissions,
            position,
            flags: RoleFlags::empty(),
            tags: None,
            unicode_emoji: None,
        }
    }

    #[test]
    fn permissions_come_from_everyone_and_the_bots_roles() {
        let guild = 100;
        let roles = [
            role(100, 0, Permissions::CREATE_INVITE, false),
            role(1, 5, Permissions::MANAGE_ROLES, true),
            role(2, 3, Permissions::MANAGE_NICKNAMES, false),
            role(3, 7, Permissions::empty(), false),
        ];
        let bot = BotStanding::of(guild, &roles, &[1]);
        assert_eq!(bot.top_position, 5);
        assert_eq!(
            bot.needed()
                .iter()
                .map(|(n, has, _)| (*n, *has))
                .collect::<Vec<_>>(),
            [
                ("Manage Roles", true),
                ("Manage Nicknames", false),
                ("Create Instant Invite", true)
            ]
        );
        assert!(bot.missing_in_words().contains("Manage Nicknames"));
        assert!(bot.unmappable(guild, &roles[0]).is_some(), "@everyone");
        assert!(bot
            .unmappable(guild, &roles[1])
            .expect("managed")
            .contains("managed"));
        assert_eq!(bot.unmappable(guild, &roles[2]), None);
        assert!(bot
            .unmappable(guild, &roles[3])
            .expect("high")
            .contains("above"));
        // A role at the bot's own position is not below it.
        assert!(bot
            .unmappable(guild, &role(4, 5, Permissions::empty(), false))
            .is_some());
    }

    #[test]
    fn roles_that_give_moderation_or_administration_powers_cannot_be_mapped() {
        let roles = [role(100, 0, Permissions::empty(), false)];
        let bot = BotStanding::of(100, &roles, &[]);
        let bot = BotStanding {
            top_position: 10,
            ..bot
        };
        for (permission, words) in [
            (Permissions::ADMINISTRATOR, "gives Administrator"),
            (Permissions::MANAGE_GUILD, "Manage Server"),
            (Permissions::MANAGE_ROLES, "Manage Roles"),
            (Permissions::MANAGE_CHANNELS, "Manage Channels"),
            (Permissions::BAN_MEMBERS, "Ban Members"),
            (Permissions::KICK_MEMBERS, "Kick Members"),
            (Permissions::MANAGE_WEBHOOKS, "Manage Webhooks"),
            (Permissions::MODERATE_MEMBERS, "Moderate Members"),
        ] {
            let why = bot
                .unmappable(
                    100,
                    &role(7, 3, permission | Permissions::SEND_MESSAGES, false),
                )
                .expect("refused");
            assert!(why.contains(words), "{why}");
        }
        let both = bot
            .unmappable(
                100,
                &role(
                    8,
                    12,
                    Permissions::BAN_MEMBERS | Permissions::KICK_MEMBERS,
                    false,
                ),
            )
            .expect("refused");
        assert!(both.contains("gives Ban Members, Kick Members"), "{both}");
        assert!(both.contains("above the bot"), "every reason: {both}");
        assert_eq!(
            bot.unmappable(
                100,
                &role(
                    9,
                    3,
                    Permissions::SEND_MESSAGES | Permissions::CREATE_INVITE,
                    false
                )
            ),
            None
        );
    }

    #[test]
    fn administrator_has_every_permission() {
        let roles = [
            role(100, 0, Permissions::empty(), false),
            role(1, 2, Permissions::ADMINISTRATOR, false),
        ];
        let bot = BotStanding::of(100, &roles, &[1]);
        assert_eq!(bot.missing_in_words(), "");
        let nobody = BotStanding::of(100, &roles, &[]);
        assert_eq!(nobody.top_position, 0);
        assert!(nobody.missing_in_words().contains("Manage Roles"));
    }
}
