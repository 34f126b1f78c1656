/**
 * A source removes only what it put there (docs/design.md): a row-mode and a membership source on
 * the same customers, plus a group a person set on the platform by hand. Each change removes only
 * its own source's groups; the platform's `update` (replace the set) and a `delete` without groups
 * (remove all) are never sent. With REPLICA IDENTITY FULL the groups a row held come from the WAL;
 * without it, from what the bridge recorded as sent.
 */
import { describe, expect, it } from 'vitest';
import { usePipelineFixture } from '../helpers/fixture.js';
import { expectedGroups, startTestBridge, statusRows, waitForCatchUp } from '../helpers/pipeline.js';

const CUSTOMERS = ['c1', 'c2', 'c3'];
/** What a marketer set on the platform by hand, per customer. */
const BY_HAND: Record<string, string[]> = { c1: ['manual'], c2: ['manual', 'vip-event'] };

describe('sources sharing customers, and groups set by hand', () => {
  const fx = usePipelineFixture('shared customers');

  /** A person adds groups on the platform: an `add` over its HTTP API, as the platform's UI would. */
  async function setByHand(): Promise<void> {
    for (const [id, groups] of Object.entries(BY_HAND)) {
      const res = await fetch(`${fx.sim.url}/api/integrate/audience/group/rel/batchAdd`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'X-Token': 'test-token' },
        body: JSON.stringify({
          publicParams: { isMatching: false, optType: 'add' },
          data: [{ thirdId: id, groups: groups.join(',') }],
        }),
      });
      expect(((await res.json()) as { code: string }).code).toBe('200');
    }
  }

  /** The independent answer: both tables' groups (read from the tables) and the hand-set ones. */
  async function expected(): Promise<Record<string, string[]>> {
    const fromTables = await expectedGroups(fx.db);
    const out: Record<string, string[]> = {};
    for (const id of CUSTOMERS) {
      const all = new Set([...(fromTables[id] ?? []), ...(BY_HAND[id] ?? [])]);
      if (all.size) out[id] = [...all].sort();
    }
    return out;
  }

  function platform(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const id of CUSTOMERS) {
      const g = fx.sim.groupsOf('thirdId', id);
      if (g?.length) out[id] = g;
    }
    return out;
  }

  it.each(['FULL', 'DEFAULT'])(
    'each change removes only its own source groups (REPLICA IDENTITY %s)',
    async (identity) => {
      await fx.db.query(`ALTER TABLE crm.customer_profile REPLICA IDENTITY ${identity}`);
      await fx.db.query(`
        INSERT INTO crm.customer_profile (cust_no, "Group Names") VALUES ('c1', 'vip,north'), ('c2', 'south');
        INSERT INTO crm.member_group (member_id, group_name) VALUES ('c1', 'gold'), ('c1', 'silver'), ('c2', 'gold');`);
      fx.running = await startTestBridge({ db: fx.db, apiUrl: fx.sim.url });
      await waitForCatchUp(fx.db);
      await setByHand();
      expect(platform()).toEqual(await expected());
      fx.requests = [];

      const steps = [
        // A row-mode group change: north goes, gold and silver (memberships) and manual stay.
        `UPDATE crm.customer_profile SET "Group Names" = 'vip' WHERE cust_no = 'c1'`,
        // A membership leaves: silver goes, vip (profiles) and manual stay.
        `DELETE FROM crm.member_group WHERE member_id = 'c1' AND group_name = 'silver'`,
        // A row-mode row deleted: south goes; c2's gold and the hand-set groups stay.
        `DELETE FROM crm.customer_profile WHERE cust_no = 'c2'`,
        // A membership moves to another group.
        `UPDATE crm.member_group SET group_name = 'bronze' WHERE member_id = 'c2'`,
        // A row-mode row emptied: vip goes, nothing else.
        `UPDATE crm.customer_profile SET "Group Names" = NULL WHERE cust_no = 'c1'`,
        // A row-mode row re-keyed onto another customer the memberships feed: c2 gets east.
        `UPDATE crm.customer_profile SET cust_no = 'c2', "Group Names" = 'east' WHERE cust_no = 'c1'`,
      ];
      for (const step of steps) {
        await fx.db.query(step);
        await waitForCatchUp(fx.db);
        expect(platform(), step).toEqual(await expected());
      }
      expect(platform()).toEqual({
        c1: ['gold', 'manual'],
        c2: ['bronze', 'east', 'manual', 'vip-event'],
      });
      // Nothing replaced a set or removed all of a customer's groups.
      expect(fx.requests.filter((r) => r.optType === 'update')).toEqual([]);
      expect(
        fx.requests.flatMap((r) => (r.optType === 'delete' ? r.rows : [])).filter((r) => !r.groups),
      ).toEqual([]);
      // The memberships' own outcomes stay true.
      const members = [...(await statusRows(fx.db, 'memberships')).values()];
      expect(members.map((m) => m.status)).toEqual(Array(members.length).fill('synced'));
    },
  );
});
