// Camera controls over JSON: GET lists the webcam's controls with their values and ranges, PUT
// sets some of them. Bodies are checked twice: their shape by the schema below, then every name
// and value against the controls the device reported, before any tool runs.
import type { FastifyPluginAsyncJsonSchemaToTs } from '@fastify/type-provider-json-schema-to-ts';

import { ControlsError } from '../../controls/types';
import type { WebCamera } from '../cameras';
import { cameraIdParams, findCamera } from '../cameras';

// Response schemas say additionalProperties: false, which is what Fastify's serializer does
// without it (it writes the listed properties only); said here so the inferred reply types have
// no index signature and the handlers' ControlState[] fits them.
const controlSchema = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    label: { type: 'string' },
    type: { type: 'string', enum: ['integer', 'boolean', 'menu'] },
    value: { type: ['integer', 'null'] },
    min: { type: 'integer' },
    max: { type: 'integer' },
    step: { type: 'integer' },
    default: { type: 'integer' },
    choices: {
      type: 'array',
      items: {
        type: 'object',
        properties: { value: { type: 'integer' }, label: { type: 'string' } },
        required: ['value', 'label'],
        additionalProperties: false,
      },
    },
    readOnly: { type: 'boolean' },
    inactive: { type: 'boolean' },
  },
  required: ['name', 'label', 'type', 'value', 'min', 'max', 'step', 'default', 'readOnly', 'inactive'],
  additionalProperties: false,
} as const;

const listResponse = { type: 'array', items: controlSchema } as const;

const errorResponse = {
  type: 'object',
  properties: { error: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
  additionalProperties: false,
} as const;

/**
 * `{ "Brightness": 140, "Focus, Auto": false, "Power Line Frequency": "50 Hz" }`, bounded. The
 * values' types are left to the controls check: Fastify's schema validation would coerce them
 * (`true` into 1, `null` into 0), and a wrong type must be refused, not converted.
 */
const putBody = {
  type: 'object',
  minProperties: 1,
  maxProperties: 64,
  propertyNames: { maxLength: 128 },
} as const;

function controlsOf(camera: WebCamera) {
  if (!camera.controls) {
    throw new ControlsError(
      'not-configured',
      `"${camera.name}" has no device to tune: its source is not a V4L2 device. Set "controlsDevice" (e.g. "video0") to the webcam whose controls you want here.`,
    );
  }
  return camera.controls;
}

export const controlsRoutes: FastifyPluginAsyncJsonSchemaToTs<{ Options: { cameras: WebCamera[] } }> = async (app, { cameras }) => {
  app.get(
    '/api/cameras/:id/controls',
    { schema: { params: cameraIdParams, response: { 200: listResponse, '5xx': errorResponse } } },
    async (request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return controlsOf(findCamera(cameras, request.params.id)).list();
    },
  );

  app.put(
    '/api/cameras/:id/controls',
    {
      schema: {
        params: cameraIdParams,
        body: putBody,
        response: { 200: listResponse, '4xx': errorResponse, '5xx': errorResponse },
      },
    },
    async (request, reply) => {
      void reply.header('Cache-Control', 'no-store');
      return controlsOf(findCamera(cameras, request.params.id)).apply(request.body);
    },
  );
};
