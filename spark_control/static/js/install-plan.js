// What an install can be asked for and how it proceeds, from GET /api/whisperx/options: the models an
// install accepts and the install phases in order. The server's list is the only list; the dashboard
// draws its stepper and its model menu from it.

import { api } from "./api.js";

export const plan = { phases: [], outcome: null, models: [], defaultModel: null };
let loading = null;

/** Load the plan once (again after a failure, e.g. before sign-in when reads need the token). */
export function ensurePlan() {
  loading ??= api("/api/whisperx/options").then(
    (options) => {
      plan.phases = options.phases;
      plan.outcome = options.outcome;
      plan.models = options.models;
      plan.defaultModel = options.default_model;
      return plan;
    },
    (error) => {
      loading = null;
      throw error;
    },
  );
  return loading;
}

export const phaseNames = () => plan.phases.map((phase) => phase.name);
