// In-memory SCIM server on scimmy + scimmy-routers + express, for roster-bench.
// Usage: node scimmy-server.mjs PORT TOKEN   (plain HTTP on 127.0.0.1)
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";
import {randomUUID} from "node:crypto";

const [port, token] = [Number(process.argv[2] ?? 8081), process.argv[3] ?? "bench"];
const users = new Map();
const byName = new Map();
const groups = new Map();

SCIMMY.Resources.declare(SCIMMY.Resources.User)
    .ingress((resource, data) => {
        const now = new Date();
        if (resource.id) {
            const old = users.get(resource.id);
            if (!old) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            const u = {...data, id: resource.id, meta: {created: old.meta.created, lastModified: now}};
            users.set(resource.id, u);
            return u;
        }
        if (byName.has(data.userName)) throw new SCIMMY.Types.Error(409, "uniqueness", "userName taken");
        const u = {...data, id: randomUUID(), meta: {created: now, lastModified: now}};
        users.set(u.id, u);
        byName.set(u.userName, u.id);
        return u;
    })
    .egress((resource) => {
        if (resource.id) {
            const u = users.get(resource.id);
            if (!u) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
            return u;
        }
        return [...users.values()];
    })
    .degress((resource) => {
        const u = users.get(resource.id);
        if (!u) throw new SCIMMY.Types.Error(404, null, `Resource ${resource.id} not found`);
        users.delete(resource.id);
        byName.delete(u.userName);
    });

SCIMMY.Resources.declare(SCIMMY.Resources.Group)
    .ingress((resource, data) => {
        const id = resource.id ?? randomUUID();
        const g = {...data, id, meta: {created: new Date(), lastModified: new Date()}};
        groups.set(id, g);
        return g;
    })
    .egress((resource) => resource.id ? groups.get(resource.id) : [...groups.values()])
    .degress((resource) => { groups.delete(resource.id); });

const app = express();
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    docUri: "https://example.com/help",
    handler: (request) => {
        if (request.header("Authorization") !== `Bearer ${token}`) throw new Error("Authorization not detected!");
        return "bench";
    },
}));
app.listen(port, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${port}`));
