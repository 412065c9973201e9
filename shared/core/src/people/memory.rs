//! An in-memory directory, for the core's tests and the local fakes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::identity::PrincipalId;
use crate::people::person::Person;
use crate::people::ports::PeopleStore;
use crate::ports::StoreError;

#[derive(Debug, Default)]
pub struct MemoryPeople {
    people: Mutex<BTreeMap<String, Person>>,
}

impl PeopleStore for MemoryPeople {
    async fn get(&self, username: &PrincipalId) -> Result<Option<Person>, StoreError> {
        Ok(self
            .people
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&username.folded())
            .cloned())
    }

    async fn put(&self, person: &mut Person) -> Result<(), StoreError> {
        let mut people = self.people.lock().unwrap_or_else(|p| p.into_inner());
        let key = person.username.folded();
        let stored = people.get(&key).map_or(0, |p| p.version);
        if stored != person.version {
            return Err(StoreError::Conflict {
                what: format!("the directory record of {}", person.username),
            });
        }
        person.version += 1;
        people.insert(key, person.clone());
        Ok(())
    }
}
