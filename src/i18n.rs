//! The languages the filter's own pages speak, chosen from the request's `Accept-Language`
//! (RFC 9110 §12.5.4), and their translations.
//!
//! Translations are keyed by the English text: `t(lang, "Verify")`. Texts with values carry
//! named placeholders (`{n}`, `{days}`, `{to}`, …) that are filled after translation with
//! [`fill`], so word order can differ between languages. Unknown texts (for instance a label
//! set in the configuration) fall back to themselves. JSON answers stay English.

/// A language of the pages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    De,
    Fr,
}

impl Lang {
    /// Every language, the default first (ties in negotiation go to the earlier one).
    pub const ALL: [Lang; 3] = [Lang::En, Lang::De, Lang::Fr];

    /// The BCP 47 tag, for `<html lang>` and `Content-Language`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
            Lang::Fr => "fr",
        }
    }
}

/// At most this many list members of `Accept-Language` are looked at.
const MAX_RANGES: usize = 32;

/// Picks the page language for an `Accept-Language` header value. Language ranges match on
/// their primary subtag (`de-CH` → German), `*` stands for any language not named, `q=0`
/// refuses a language, the highest weight wins and ties go to the range listed first.
/// Absent, empty or malformed headers (and malformed members) give English. Never panics.
pub fn negotiate(accept_language: Option<&str>) -> Lang {
    let Some(header) = accept_language else { return Lang::En };
    // Per language: the weight and position of the best range naming it, and of `*`.
    let mut named: [Option<(u16, usize)>; Lang::ALL.len()] = [None; Lang::ALL.len()];
    let mut any: Option<(u16, usize)> = None;
    for (pos, member) in header.split(',').take(MAX_RANGES).enumerate() {
        let Some((range, q)) = parse_member(member) else { continue };
        if range == "*" {
            if any.is_none() {
                any = Some((q, pos));
            }
            continue;
        }
        let primary = range.split('-').next().unwrap_or("");
        for (i, lang) in Lang::ALL.iter().enumerate() {
            if primary.eq_ignore_ascii_case(lang.code()) {
                // A more specific range may weigh differently (`de;q=0.5, de-CH`): the
                // language gets the best weight any range gives it.
                if let Some(slot) = named.get_mut(i) {
                    if slot.is_none_or(|(bq, _)| q > bq) {
                        *slot = Some((q, pos));
                    }
                }
            }
        }
    }
    let mut best: Option<(u16, usize, Lang)> = None;
    for (i, lang) in Lang::ALL.iter().enumerate() {
        let Some((q, pos)) = named.get(i).copied().flatten().or(any) else { continue };
        if q == 0 {
            continue;
        }
        if best.is_none_or(|(bq, bpos, _)| q > bq || (q == bq && pos < bpos)) {
            best = Some((q, pos, *lang));
        }
    }
    best.map_or(Lang::En, |(_, _, l)| l)
}

/// One list member: `language-range [ OWS ";" OWS "q=" qvalue ]`; the weight in thousandths.
fn parse_member(member: &str) -> Option<(&str, u16)> {
    let mut parts = member.split(';');
    let range = parts.next()?.trim_matches([' ', '\t']);
    if !range_ok(range) {
        return None;
    }
    let mut q = 1000;
    let mut seen_q = false;
    for p in parts {
        let (name, value) = p.split_once('=')?;
        if !name.trim_matches([' ', '\t']).eq_ignore_ascii_case("q") || seen_q {
            return None;
        }
        seen_q = true;
        q = parse_qvalue(value.trim_matches([' ', '\t']))?;
    }
    Some((range, q))
}

/// `language-range = (1*8ALPHA *("-" 1*8alphanum)) / "*"` (RFC 4647).
fn range_ok(r: &str) -> bool {
    if r == "*" {
        return true;
    }
    let mut subtags = r.split('-');
    let first = subtags.next().unwrap_or("");
    (1..=8).contains(&first.len())
        && first.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100u16, 10, 1].get(i).copied().unwrap_or(0);
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The text in `lang`; English texts without a translation come back unchanged.
pub fn t(lang: Lang, en: &str) -> &str {
    match lang {
        Lang::En => en,
        Lang::De => TABLE.iter().find(|r| r.0 == en).map_or(en, |r| r.1),
        Lang::Fr => TABLE.iter().find(|r| r.0 == en).map_or(en, |r| r.2),
    }
}

/// Fills `{name}` placeholders in one pass over `template`, so values that happen to contain
/// placeholder-like text are never filled again.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match values.iter().find(|(k, _)| tail.starts_with(k)) {
            Some((k, v)) => {
                out.push_str(v);
                rest = &tail[k.len()..];
            }
            None => {
                out.push('{');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// (English, German, French). French uses a no-break space (U+00A0) before `:`, `;`, `?`, `!`.
pub(crate) static TABLE: &[(&str, &str, &str)] = &[
    // The challenge.
    ("Two-step verification", "Bestätigung in zwei Schritten", "Vérification en deux étapes"),
    (
        "For your security, please confirm it is still you.",
        "Bitte bestätigen Sie zu Ihrer Sicherheit, dass Sie es noch sind.",
        "Pour votre sécurité, veuillez confirmer qu’il s’agit toujours de vous.",
    ),
    (
        "Use your security key or passkey to continue.",
        "Verwenden Sie Ihren Sicherheitsschlüssel oder Passkey, um fortzufahren.",
        "Utilisez votre clé de sécurité ou votre clé d’accès pour continuer.",
    ),
    (
        "Confirm it is you with your second factor to continue.",
        "Bestätigen Sie mit Ihrem zweiten Faktor, dass Sie es sind, um fortzufahren.",
        "Confirmez votre identité avec votre second facteur pour continuer.",
    ),
    ("Signed in as {user}", "Angemeldet als {user}", "Connecté en tant que {user}"),
    ("Code from your authenticator app", "Code aus Ihrer Authenticator-App", "Code de votre application d’authentification"),
    (
        "Trust this device for {days} days",
        "Diesem Gerät {days} Tage lang vertrauen",
        "Faire confiance à cet appareil pendant {days} jours",
    ),
    ("Verify", "Bestätigen", "Vérifier"),
    ("Use a security key or passkey", "Sicherheitsschlüssel oder Passkey verwenden", "Utiliser une clé de sécurité ou une clé d’accès"),
    ("Email me a code", "Code per E-Mail senden", "M’envoyer un code par e-mail"),
    ("Text me a code", "Code per SMS senden", "M’envoyer un code par SMS"),
    ("Use a recovery code", "Einen Wiederherstellungscode verwenden", "Utiliser un code de récupération"),
    ("Recovery code", "Wiederherstellungscode", "Code de récupération"),
    ("Use recovery code", "Wiederherstellungscode einlösen", "Utiliser le code de récupération"),
    ("Name for this key", "Name für diesen Schlüssel", "Nom de cette clé"),
    ("Passkey", "Passkey", "Clé d’accès"),
    (
        "Security keys and passkeys need JavaScript.",
        "Sicherheitsschlüssel und Passkeys benötigen JavaScript.",
        "Les clés de sécurité et les clés d’accès nécessitent JavaScript.",
    ),
    // Quick login.
    ("Sign in", "Anmelden", "Connexion"),
    (
        "Use a passkey saved on this device or a security key: no password needed.",
        "Verwenden Sie einen auf diesem Gerät gespeicherten Passkey oder einen Sicherheitsschlüssel – ganz ohne Passwort.",
        "Utilisez une clé d’accès enregistrée sur cet appareil ou une clé de sécurité\u{a0}: aucun mot de passe n’est nécessaire.",
    ),
    (
        "User name (optional; your browser may suggest your passkey here)",
        "Benutzername (optional; Ihr Browser schlägt hier eventuell Ihren Passkey vor)",
        "Nom d’utilisateur (facultatif\u{a0}; votre navigateur peut vous proposer ici votre clé d’accès)",
    ),
    ("Sign in with a passkey", "Mit einem Passkey anmelden", "Se connecter avec une clé d’accès"),
    ("Sign in another way", "Auf andere Weise anmelden", "Se connecter autrement"),
    // Email and SMS codes.
    (
        "We sent a 6-digit code to {to}. It is good for a few minutes.",
        "Wir haben einen 6-stelligen Code an {to} gesendet. Er ist einige Minuten gültig.",
        "Nous avons envoyé un code à 6 chiffres à {to}. Il est valable quelques minutes.",
    ),
    (
        "Enter the 6-digit code we sent you.",
        "Geben Sie den 6-stelligen Code ein, den wir Ihnen gesendet haben.",
        "Saisissez le code à 6 chiffres que nous vous avons envoyé.",
    ),
    ("Code", "Code", "Code"),
    ("Send a new code", "Neuen Code senden", "Envoyer un nouveau code"),
    ("Add {method}", "{method} hinzufügen", "Ajouter une méthode\u{a0}: {method}"),
    (
        "We sent a 6-digit code to {to}. Enter it to confirm the address.",
        "Wir haben einen 6-stelligen Code an {to} gesendet. Geben Sie ihn ein, um die Adresse zu bestätigen.",
        "Nous avons envoyé un code à 6 chiffres à {to}. Saisissez-le pour confirmer l’adresse.",
    ),
    ("Confirm", "Bestätigen", "Confirmer"),
    // Recovery codes.
    ("Recovery codes", "Wiederherstellungscodes", "Codes de récupération"),
    ("Your recovery codes", "Ihre Wiederherstellungscodes", "Vos codes de récupération"),
    (
        "Each code signs you in once if you lose your other methods. Save them somewhere safe now: they will not be shown again, and any older codes no longer work.",
        "Mit jedem Code können Sie sich einmal anmelden, falls Sie Ihre anderen Methoden verlieren. Bewahren Sie die Codes jetzt sicher auf: Sie werden nicht noch einmal angezeigt, und ältere Codes sind ab sofort ungültig.",
        "Chaque code vous permet de vous connecter une fois si vous perdez vos autres méthodes. Conservez-les dès maintenant en lieu sûr\u{a0}: ils ne seront plus affichés, et les anciens codes ne fonctionnent plus.",
    ),
    ("Back to security", "Zurück zu den Sicherheitseinstellungen", "Retour aux paramètres de sécurité"),
    ("Welcome back, {user}.", "Willkommen zurück, {user}.", "Bon retour, {user}."),
    ("Not {user}?", "Nicht {user}?", "Vous n'êtes pas {user} ?"),
    ("One more step: recovery codes", "Noch ein Schritt: Wiederherstellungscodes", "Encore une étape : les codes de récupération"),
    (
        "If you lose your phone or key, a recovery code lets you in. Generate your codes now and keep them somewhere safe.",
        "Wenn Sie Ihr Telefon oder Ihren Schlüssel verlieren, kommen Sie mit einem Wiederherstellungscode hinein. Erzeugen Sie jetzt Ihre Codes und bewahren Sie sie sicher auf.",
        "Si vous perdez votre téléphone ou votre clé, un code de récupération vous permet d'entrer. Générez vos codes maintenant et conservez-les en lieu sûr.",
    ),
    ("Generate my recovery codes", "Meine Wiederherstellungscodes erzeugen", "Générer mes codes de récupération"),
    ("Recovery code used", "Wiederherstellungscode verwendet", "Code de récupération utilisé"),
    ("Recovery code accepted", "Wiederherstellungscode akzeptiert", "Code de récupération accepté"),
    ("You have {n} recovery codes left.", "Sie haben noch {n} Wiederherstellungscodes.", "Il vous reste {n} codes de récupération."),
    ("You have {n} recovery code left.", "Sie haben noch {n} Wiederherstellungscode.", "Il vous reste {n} code de récupération."),
    (
        "Generate a new set on your security page soon.",
        "Erzeugen Sie bald auf Ihrer Sicherheitsseite neue Codes.",
        "Générez bientôt une nouvelle série sur votre page de sécurité.",
    ),
    ("Continue", "Weiter", "Continuer"),
    ("Security page", "Sicherheitsseite", "Page de sécurité"),
    // Enrollment.
    ("Set up two-step verification", "Bestätigung in zwei Schritten einrichten", "Configurer la vérification en deux étapes"),
    ("A security key or passkey", "Ein Sicherheitsschlüssel oder Passkey", "Une clé de sécurité ou une clé d’accès"),
    (
        "Use this device's passkey (fingerprint, face, PIN) or a USB/NFC security key.",
        "Verwenden Sie den Passkey dieses Geräts (Fingerabdruck, Gesicht, PIN) oder einen USB-/NFC-Sicherheitsschlüssel.",
        "Utilisez la clé d’accès de cet appareil (empreinte digitale, visage, code PIN) ou une clé de sécurité USB/NFC.",
    ),
    ("Add a security key or passkey", "Sicherheitsschlüssel oder Passkey hinzufügen", "Ajouter une clé de sécurité ou une clé d’accès"),
    ("Or an authenticator app", "Oder eine Authenticator-App", "Ou une application d’authentification"),
    (
        "Scan this code with an authenticator app (Google Authenticator, Authy, 1Password, …), then enter the {digits}-digit code it shows.",
        "Scannen Sie diesen Code mit einer Authenticator-App (Google Authenticator, Authy, 1Password, …) und geben Sie dann den angezeigten {digits}-stelligen Code ein.",
        "Scannez ce code avec une application d’authentification (Google Authenticator, Authy, 1Password…), puis saisissez le code à {digits} chiffres qu’elle affiche.",
    ),
    ("QR code for {issuer}", "QR-Code für {issuer}", "Code QR pour {issuer}"),
    (
        "Can't scan? Enter this key:",
        "Scannen nicht möglich? Geben Sie diesen Schlüssel ein:",
        "Impossible de scanner\u{a0}? Saisissez cette clé\u{a0}:",
    ),
    (
        "Open in an authenticator app on this device",
        "In einer Authenticator-App auf diesem Gerät öffnen",
        "Ouvrir dans une application d’authentification sur cet appareil",
    ),
    ("Name for this authenticator", "Name für diese Authenticator-App", "Nom de cette application d’authentification"),
    ("Authenticator", "Authenticator", "Authentificateur"),
    ("Code from the app", "Code aus der App", "Code de l’application"),
    ("Confirm and continue", "Bestätigen und weiter", "Confirmer et continuer"),
    // The security home.
    ("Security", "Sicherheit", "Sécurité"),
    (
        "Signed in as {user}, verified with {method}.",
        "Angemeldet als {user}, bestätigt mit: {method}.",
        "Connecté en tant que {user}, vérifié avec\u{a0}: {method}.",
    ),
    ("Renamed.", "Umbenannt.", "Renommé."),
    ("Turned off.", "Deaktiviert.", "Désactivé."),
    ("Turned on.", "Aktiviert.", "Activé."),
    ("Removed.", "Entfernt.", "Supprimé."),
    ("That device is no longer trusted.", "Diesem Gerät wird nicht mehr vertraut.", "Cet appareil n’est plus approuvé."),
    ("Added.", "Hinzugefügt.", "Ajouté."),
    ("Done.", "Erledigt.", "Terminé."),
    ("Your methods", "Ihre Methoden", "Vos méthodes"),
    ("No methods yet.", "Noch keine Methoden.", "Aucune méthode pour l’instant."),
    ("last used {date}", "zuletzt verwendet am {date}", "dernière utilisation le {date}"),
    ("{n} codes left", "noch {n} Codes", "{n} codes restants"),
    ("{n} code left", "noch {n} Code", "{n} code restant"),
    ("(off)", "(aus)", "(désactivé)"),
    ("(managed by your organisation)", "(von Ihrer Organisation verwaltet)", "(géré par votre organisation)"),
    ("added {date}", "hinzugefügt am {date}", "ajouté le {date}"),
    ("New name for {name}", "Neuer Name für {name}", "Nouveau nom pour {name}"),
    ("Rename", "Umbenennen", "Renommer"),
    ("Turn off", "Deaktivieren", "Désactiver"),
    ("Turn on", "Aktivieren", "Activer"),
    ("Remove", "Entfernen", "Supprimer"),
    ("Add a method", "Methode hinzufügen", "Ajouter une méthode"),
    ("Add an authenticator app", "Authenticator-App hinzufügen", "Ajouter une application d’authentification"),
    ("Generate new recovery codes", "Neue Wiederherstellungscodes erzeugen", "Générer de nouveaux codes de récupération"),
    ("Trusted devices", "Vertrauenswürdige Geräte", "Appareils de confiance"),
    ("Unknown browser", "Unbekannter Browser", "Navigateur inconnu"),
    ("trusted {date}", "vertraut seit {date}", "approuvé le {date}"),
    ("until {date}", "bis {date}", "jusqu’au {date}"),
    ("Stop trusting", "Nicht mehr vertrauen", "Ne plus faire confiance"),
    ("Sign out of two-step session", "Von der Zwei-Schritt-Sitzung abmelden", "Se déconnecter de la session en deux étapes"),
    // Default method names (config's `Config::label`, unless renamed in method_labels).
    ("Authenticator app", "Authenticator-App", "Application d’authentification"),
    ("Security key or passkey", "Sicherheitsschlüssel oder Passkey", "Clé de sécurité ou clé d’accès"),
    ("Email code", "Code per E-Mail", "Code par e-mail"),
    ("Text message code", "Code per SMS", "Code par SMS"),
    ("Trusted device", "Vertrauenswürdiges Gerät", "Appareil de confiance"),
    ("None", "Keine", "Aucune"),
    // Messages and errors the gate renders into pages (src/gate); JSON answers stay English.
    ("Bad request", "Ungültige Anfrage", "Requête invalide"),
    ("The request has no path.", "Die Anfrage hat keinen Pfad.", "La requête n’a pas de chemin."),
    ("Request refused", "Anfrage abgelehnt", "Requête refusée"),
    (
        "This form was submitted from another site.",
        "Dieses Formular wurde von einer anderen Website gesendet.",
        "Ce formulaire a été envoyé depuis un autre site.",
    ),
    ("Not available", "Nicht verfügbar", "Non disponible"),
    ("This method is not allowed here.", "Diese Methode ist hier nicht erlaubt.", "Cette méthode n’est pas autorisée ici."),
    ("This method is not available.", "Diese Methode ist nicht verfügbar.", "Cette méthode n’est pas disponible."),
    ("Method not allowed", "Methode nicht erlaubt", "Méthode non autorisée"),
    (
        "This endpoint does not take that method.",
        "Diese Adresse unterstützt diese Anfragemethode nicht.",
        "Cette adresse n’accepte pas cette méthode de requête.",
    ),
    ("Not found", "Nicht gefunden", "Introuvable"),
    ("There is no such page.", "Diese Seite gibt es nicht.", "Cette page n’existe pas."),
    ("Internal error", "Interner Fehler", "Erreur interne"),
    ("Unexpected body.", "Unerwarteter Inhalt der Anfrage.", "Contenu de requête inattendu."),
    ("Unexpected state.", "Unerwarteter Zustand.", "État inattendu."),
    ("Request too large", "Anfrage zu groß", "Requête trop volumineuse"),
    ("The form was too large.", "Das Formular war zu groß.", "Le formulaire était trop volumineux."),
    ("The form could not be read.", "Das Formular konnte nicht gelesen werden.", "Le formulaire n’a pas pu être lu."),
    ("Setup expired", "Einrichtung abgelaufen", "Configuration expirée"),
    (
        "This setup page has expired. Open it again to get a new code.",
        "Diese Einrichtungsseite ist abgelaufen. Öffnen Sie sie erneut, um einen neuen Code zu erhalten.",
        "Cette page de configuration a expiré. Ouvrez-la de nouveau pour obtenir un nouveau code.",
    ),
    ("Start again from your security page.", "Beginnen Sie erneut auf Ihrer Sicherheitsseite.", "Recommencez depuis votre page de sécurité."),
    ("Bad name", "Ungültiger Name", "Nom invalide"),
    ("Use a name of at most 64 characters.", "Verwenden Sie einen Namen mit höchstens 64 Zeichen.", "Utilisez un nom de 64 caractères au plus."),
    ("Use a name of 1 to 64 characters.", "Verwenden Sie einen Namen mit 1 bis 64 Zeichen.", "Utilisez un nom de 1 à 64 caractères."),
    ("Not allowed", "Nicht erlaubt", "Non autorisé"),
    (
        "Ask your administrator to set up two-step verification for you.",
        "Bitten Sie Ihre Administration, die Bestätigung in zwei Schritten für Sie einzurichten.",
        "Demandez à votre administrateur de configurer la vérification en deux étapes pour vous.",
    ),
    ("Too many methods", "Zu viele Methoden", "Trop de méthodes"),
    (
        "Remove a method before adding another.",
        "Entfernen Sie eine Methode, bevor Sie eine weitere hinzufügen.",
        "Supprimez une méthode avant d’en ajouter une autre.",
    ),
    ("Sign-in required", "Anmeldung erforderlich", "Connexion requise"),
    (
        "Sign in first, then verify with your second factor.",
        "Melden Sie sich zuerst an und bestätigen Sie dann mit Ihrem zweiten Faktor.",
        "Connectez-vous d’abord, puis confirmez avec votre second facteur.",
    ),
    ("Verification unavailable", "Bestätigung nicht verfügbar", "Vérification indisponible"),
    (
        "The verification service is not answering. Try again in a moment.",
        "Der Bestätigungsdienst antwortet nicht. Versuchen Sie es gleich noch einmal.",
        "Le service de vérification ne répond pas. Réessayez dans un instant.",
    ),
    ("Two-step verification required", "Bestätigung in zwei Schritten erforderlich", "Vérification en deux étapes requise"),
    (
        "Your account has no second factor. Ask your administrator to set one up.",
        "Ihr Konto hat keinen zweiten Faktor. Bitten Sie Ihre Administration, einen einzurichten.",
        "Votre compte n’a pas de second facteur. Demandez à votre administrateur d’en configurer un.",
    ),
    ("Another method needed", "Eine andere Methode ist nötig", "Une autre méthode est nécessaire"),
    (
        "This page needs one of these methods: {methods}. Add one on your security page (/.mfa/).",
        "Diese Seite erfordert eine dieser Methoden: {methods}. Fügen Sie eine auf Ihrer Sicherheitsseite (/.mfa/) hinzu.",
        "Cette page exige l’une de ces méthodes\u{a0}: {methods}. Ajoutez-en une sur votre page de sécurité (/.mfa/).",
    ),
    (
        "Enter the {n}-digit code from your app.",
        "Geben Sie den {n}-stelligen Code aus Ihrer App ein.",
        "Saisissez le code à {n} chiffres de votre application.",
    ),
    (
        "That code did not match. Check the app and try again.",
        "Dieser Code stimmt nicht. Prüfen Sie die App und versuchen Sie es erneut.",
        "Ce code ne correspond pas. Vérifiez l’application et réessayez.",
    ),
    ("That code is not right. Try again.", "Dieser Code ist nicht richtig. Versuchen Sie es erneut.", "Ce code est incorrect. Réessayez."),
    (
        "That code was already used. Wait for the next one.",
        "Dieser Code wurde bereits verwendet. Warten Sie auf den nächsten.",
        "Ce code a déjà été utilisé. Attendez le suivant.",
    ),
    ("That is not a recovery code.", "Das ist kein Wiederherstellungscode.", "Ce n’est pas un code de récupération."),
    (
        "That recovery code is not valid or was used already.",
        "Dieser Wiederherstellungscode ist ungültig oder wurde bereits verwendet.",
        "Ce code de récupération n’est pas valide ou a déjà été utilisé.",
    ),
    ("Check the address", "Adresse prüfen", "Vérifiez l’adresse"),
    ("That address does not look right.", "Diese Adresse scheint nicht richtig zu sein.", "Cette adresse ne semble pas correcte."),
    ("Check the code", "Code prüfen", "Vérifiez le code"),
    ("Enter the 6-digit code we sent.", "Geben Sie den 6-stelligen Code ein, den wir gesendet haben.", "Saisissez le code à 6 chiffres que nous avons envoyé."),
    ("That code is not right or has expired.", "Dieser Code ist falsch oder abgelaufen.", "Ce code est incorrect ou a expiré."),
    (
        "That code has expired or was used. Ask for a new one.",
        "Dieser Code ist abgelaufen oder wurde bereits verwendet. Fordern Sie einen neuen an.",
        "Ce code a expiré ou a déjà été utilisé. Demandez-en un nouveau.",
    ),
    ("No address", "Keine Adresse", "Aucune adresse"),
    (
        "There is no address to send a code to. Use another method.",
        "Es gibt keine Adresse, an die ein Code gesendet werden kann. Verwenden Sie eine andere Methode.",
        "Il n’y a aucune adresse à laquelle envoyer un code. Utilisez une autre méthode.",
    ),
    (
        "This form is out of date. Reload the security page and try again.",
        "Dieses Formular ist veraltet. Laden Sie die Sicherheitsseite neu und versuchen Sie es erneut.",
        "Ce formulaire n’est plus à jour. Rechargez la page de sécurité et réessayez.",
    ),
    ("Which method? The form named none.", "Welche Methode? Das Formular nennt keine.", "Quelle méthode\u{a0}? Le formulaire n’en indique aucune."),
    ("There is no such method on your account.", "Diese Methode gibt es in Ihrem Konto nicht.", "Cette méthode n’existe pas sur votre compte."),
    (
        "This method cannot be turned off or removed.",
        "Diese Methode kann nicht deaktiviert oder entfernt werden.",
        "Cette méthode ne peut être ni désactivée ni supprimée.",
    ),
    (
        "This key belongs to your organisation; ask your administrator.",
        "Dieser Schlüssel gehört Ihrer Organisation; wenden Sie sich an Ihre Administration.",
        "Cette clé appartient à votre organisation\u{a0}; adressez-vous à votre administrateur.",
    ),
    ("Too many attempts", "Zu viele Versuche", "Trop de tentatives"),
    (
        "Too many failed attempts. Try again in {n} minute.",
        "Zu viele fehlgeschlagene Versuche. Versuchen Sie es in {n} Minute erneut.",
        "Trop de tentatives infructueuses. Réessayez dans {n} minute.",
    ),
    (
        "Too many failed attempts. Try again in {n} minutes.",
        "Zu viele fehlgeschlagene Versuche. Versuchen Sie es in {n} Minuten erneut.",
        "Trop de tentatives infructueuses. Réessayez dans {n} minutes.",
    ),
    ("Too many codes", "Zu viele Codes", "Trop de codes"),
    (
        "Too many codes were sent. Try again in {n} minutes.",
        "Es wurden zu viele Codes gesendet. Versuchen Sie es in {n} Minuten erneut.",
        "Trop de codes ont été envoyés. Réessayez dans {n} minutes.",
    ),
    ("Sign-out incomplete", "Abmeldung unvollständig", "Déconnexion incomplète"),
    (
        "You are signed out in this browser, but the sign-out could not be recorded. Try again.",
        "Sie sind in diesem Browser abgemeldet, aber die Abmeldung konnte nicht gespeichert werden. Versuchen Sie es erneut.",
        "Vous êtes déconnecté dans ce navigateur, mais la déconnexion n'a pas pu être enregistrée. Réessayez.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let cases: &[(Option<&str>, Lang)] = &[
            (None, Lang::En),
            (Some(""), Lang::En),
            (Some("de"), Lang::De),
            (Some("DE"), Lang::De),
            (Some("fr-FR"), Lang::Fr),
            (Some("de-CH"), Lang::De),
            (Some("de-CH-1996"), Lang::De),
            (Some("en-US,en;q=0.9"), Lang::En),
            (Some("es, fr;q=0.8, de;q=0.7"), Lang::Fr),
            (Some("fr;q=0.5, de;q=0.9"), Lang::De),
            (Some("de;q=0.5 , fr ; q=0.6"), Lang::Fr),
            (Some("fr;q=0.8, de;q=0.8"), Lang::Fr),
            (Some("de;q=0.800, fr;q=0.8"), Lang::De),
            (Some("fr;Q=1.000"), Lang::Fr),
            (Some("*"), Lang::En),
            (Some("ja, *;q=0.1"), Lang::En),
            (Some("en;q=0, *"), Lang::De),
            (Some("de;q=0.5, *"), Lang::En),
            (Some("fr, *;q=0.5"), Lang::Fr),
            (Some("de;q=0"), Lang::En),
            (Some("en;q=0, de;q=0, fr;q=0"), Lang::En),
            (Some("de;q=0.1, de-AT;q=0.9, fr;q=0.5"), Lang::De),
            (Some("ja, zh-Hant"), Lang::En),
            // Malformed members are skipped; a wholly malformed header gives English.
            (Some("de;q=2"), Lang::En),
            (Some("de;q=0.1234"), Lang::En),
            (Some("de;q=.5"), Lang::En),
            (Some("de;q=1.5, fr;q=0.2"), Lang::Fr),
            (Some("de;q"), Lang::En),
            (Some("de;x=1"), Lang::En),
            (Some("de;q=0.5;q=0.9"), Lang::En),
            (Some("deutsch-language-x"), Lang::En),
            (Some("d e"), Lang::En),
            (Some("de_DE"), Lang::En),
            (Some("toolongtag"), Lang::En),
            (Some(";;;,,,=q"), Lang::En),
            (Some("ñ, de"), Lang::De),
            (Some("de-"), Lang::En),
            (Some("-de"), Lang::En),
        ];
        for (h, want) in cases {
            assert_eq!(negotiate(*h), *want, "{h:?}");
        }
        // Only the first members count, so a huge header costs little.
        let long = format!("{}fr", "xx;q=0.1,".repeat(100));
        assert_eq!(negotiate(Some(&long)), Lang::En);
    }

    #[test]
    fn negotiation_never_panics() {
        let bytes = ["de", "fr", "*", ";", "q", "=", "0", "1", ".", ",", " ", "-", "ü", "\u{0}", "\t", "9999"];
        // Every string of up to four pieces from the list above.
        let mut seqs: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            let mut more = Vec::new();
            for s in &seqs {
                for b in bytes {
                    more.push(format!("{s}{b}"));
                }
            }
            seqs = more;
        }
        for s in &seqs {
            let _ = negotiate(Some(s));
        }
    }

    #[test]
    fn table_is_well_formed() {
        for (i, (en, de, fr)) in TABLE.iter().enumerate() {
            assert!(!de.is_empty() && !fr.is_empty(), "{en:?}");
            assert!(!TABLE[..i].iter().any(|r| r.0 == *en), "duplicate key {en:?}");
            for tr in [de, fr] {
                assert_eq!(placeholders(tr), placeholders(en), "placeholders of {en:?} in {tr:?}");
                assert!(!tr.contains(['<', '>', '"']), "markup in {tr:?}");
            }
        }
    }

    fn placeholders(s: &str) -> Vec<&str> {
        let mut v: Vec<&str> = s
            .match_indices('{')
            .filter_map(|(i, _)| s[i..].find('}').map(|j| &s[i..=i + j]))
            .filter(|p| p[1..p.len() - 1].bytes().all(|b| b.is_ascii_lowercase()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The string literals passed as `what`'s `arg`-th argument (0-based) in `src`.
    fn literal_args(src: &str, call: &str, args: &[usize]) -> Vec<String> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(i) = src[from..].find(call) {
            let start = from + i + call.len();
            from = start;
            // The call's name must not be the tail of a longer identifier.
            let before = src[..start - call.len()].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let (mut depth, mut arg, mut k) = (0usize, 0usize, start);
            let b = src.as_bytes();
            while k < b.len() {
                match b[k] {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' if depth == 0 => break,
                    b')' | b']' | b'}' => depth -= 1,
                    b',' if depth == 0 => arg += 1,
                    b'"' => {
                        let mut s = String::new();
                        k += 1;
                        while k < b.len() && b[k] != b'"' {
                            if b[k] == b'\\' {
                                k += 1;
                            }
                            s.push(b[k] as char);
                            k += 1;
                        }
                        let s = String::from_utf8(s.chars().map(|c| c as u8).collect()).unwrap_or(s);
                        if depth == 0 && args.contains(&arg) {
                            out.push(s);
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
        }
        out
    }

    fn has_translation(key: &str) -> bool {
        TABLE.iter().any(|r| r.0 == key)
    }

    /// Every text the pages translate, and every title and text the gate renders into a page,
    /// has a German and a French translation.
    #[test]
    fn every_page_text_is_translated() {
        let pages = include_str!("pages/mod.rs");
        let keys = literal_args(pages, "tr(", &[1]);
        assert!(keys.len() > 60, "found only {} texts in pages.rs", keys.len());
        let missing: Vec<&String> = keys.iter().filter(|k| !has_translation(k)).collect();
        assert!(missing.is_empty(), "pages.rs texts without translation: {missing:#?}");

        // The gate's messages: (call, which arguments are user-visible text).
        let calls: &[(&str, &[usize])] = &[
            ("message(", &[3, 4]),
            ("refuse(", &[3]),
            ("challenge_again(", &[5]),
            ("otp_retry(", &[5]),
            ("enroll_again(", &[5]),
            ("pages::message(", &[1, 2]),
            ("i18n::t(", &[1]),
        ];
        let mut missing = Vec::new();
        let mut found = 0;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/gate");
        let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("tests.rs")) {
            let src = std::fs::read_to_string(path).unwrap();
            let src = src.as_str();
            for (call, args) in calls {
                for s in literal_args(src, call, args) {
                    found += 1;
                    if !has_translation(&s) {
                        missing.push(s);
                    }
                }
            }
        }
        assert!(found > 30, "found only {found} gate texts");
        missing.sort();
        missing.dedup();
        assert!(
            missing.is_empty(),
            "gate texts shown in pages without translation (add them to i18n::TABLE): {missing:#?}"
        );
    }

    #[test]
    fn translates_and_fills() {
        assert_eq!(t(Lang::De, "Verify"), "Bestätigen");
        assert_eq!(t(Lang::Fr, "Verify"), "Vérifier");
        assert_eq!(t(Lang::En, "Verify"), "Verify");
        assert_eq!(t(Lang::De, "Custom label"), "Custom label");
        assert_eq!(
            fill(t(Lang::De, "Trust this device for {days} days"), &[("{days}", "30")]),
            "Diesem Gerät 30 Tage lang vertrauen"
        );
        // One pass: a value containing a placeholder is left alone; unknown braces stay.
        assert_eq!(fill("{a} {b} {c", &[("{a}", "{b}"), ("{b}", "x")]), "{b} x {c");
        assert_eq!(fill("", &[]), "");
        assert_eq!(fill("{é}", &[]), "{é}");
    }
}
