export {
  createPolicyEngine,
  type MockPolicies,
  type PolicyEngine,
  type PolicyEngineOptions,
  type SweepResult,
  type WriteDenial,
} from './policies.js';
export { createSlidingWindowLimiter, type SlidingWindowLimiter } from './rate-limiter.js';
export {
  applyPolicyPatch,
  DEFAULT_POLICY_SETTINGS,
  type PolicySettings,
  PolicySettingsError,
} from './settings.js';
